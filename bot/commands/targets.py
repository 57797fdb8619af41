"""/target: how far an index is from a level, e.g. the Russell 2000 at 3,000."""

from __future__ import annotations

import math
import re

from bot.answers import Answer, Command, Request, UsageError
from bot.format import day, esc, money, number, pct
from bot.provenance import footer, snapshot_with
from market import metrics
from market.instruments import INDICES, PROXY_ETF, RUT, resolve

USAGE = "Usage: <code>/target LEVEL [index]</code>, e.g. <code>/target 3000</code> or <code>/target 6000 spx</code>."
MAX_LEVEL = 1_000_000.0
_LEVEL = re.compile(r"^([0-9][0-9,]*(?:\.[0-9]+)?)(k?)$", re.IGNORECASE)


def parse_level(text: str) -> float:
    match = _LEVEL.match(text.strip())
    if not match:
        raise UsageError(f"“{esc(text[:20])}” is not an index level. {USAGE}")
    value = float(match.group(1).replace(",", "")) * (1000 if match.group(2) else 1)
    if not (0 < value <= MAX_LEVEL and math.isfinite(value)):
        raise UsageError(f"The level must be above 0 and at most {number(MAX_LEVEL, 0)}. {USAGE}")
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise UsageError(f"“{esc(text[:20])}” has more decimals than an index level: at most 2. {USAGE}")
    return round(value, 2)


def level_text(level: float) -> str:
    """A level as the user typed it, with thousands separators: 1920 -> '1,920', 1923.5 -> '1,923.5'."""
    whole, _, decimals = f"{level:,.2f}".partition(".")
    decimals = decimals.rstrip("0")
    return f"{whole}.{decimals}" if decimals else whole


def distance_pct(fraction: float, signed: bool = False) -> str:
    """A distance as a percentage with enough decimals that a non-zero one never reads 0.00%."""
    digits = 2
    while digits < 6 and fraction != 0 and round(abs(fraction) * 100, digits) == 0:
        digits += 1
    return pct(fraction, digits, signed=signed)


def target(request: Request) -> Answer:
    if not request.args or len(request.args) > 2:
        raise UsageError(USAGE)
    level = parse_level(request.args[0])
    index = RUT
    if len(request.args) == 2:
        found = resolve(request.args[1])
        if found is None or found not in INDICES:
            names = esc("rut, russell, r2k, small, spx, sp500, s&p, large")
            raise UsageError(f"I don't know the index “{esc(request.args[1][:20])}”. Use one of: {names}.")
        index = found
    etf_symbol = PROXY_ETF[index.symbol]
    snapshot = snapshot_with(request.services, index.symbol)
    series = snapshot.series(index.symbol)
    distance = metrics.target_distance(level, series, snapshot.series(etf_symbol), etf_symbol)
    mark = metrics.high_mark(series)
    if distance is None or mark is None:
        raise UsageError(f"No closes for the {esc(index.name)} yet. Please try again later.")

    name, shown = f"<b>{esc(index.name)}</b>", level_text(level)
    last = f"{number(distance.last)} ({day(mark.last_date)} close)"
    if number(distance.last) == number(level):
        head = f"The {name} is already at {shown}: that was its {day(mark.last_date)} close."
    elif distance.change_needed > 0:
        head = f"The {name} needs <b>{distance_pct(distance.change_needed, signed=True)}</b> to reach {shown} from {last}."
    else:
        # Both figures are measured from a different base: above the level is last ÷ level − 1, the fall
        # needed is 1 − level ÷ last (2,400.93 is 25.05% above 1,920; a 20.03% fall reaches it).
        above = distance.last / level - 1
        fall = -distance.change_needed
        head = (
            f"The {name} is {distance_pct(above)} above {shown}: a fall of <b>{distance_pct(fall)}</b> "
            f"from {last} would take it there."
        )
    lines = [head]
    versus_high = level / mark.high - 1
    high = f"its all-time closing high of {number(mark.high)} ({day(mark.high_date)})"
    if number(level) == number(mark.high):
        lines.append(f"{shown} is {high}.")
    else:
        where = "above" if versus_high > 0 else "below"
        lines.append(f"{shown} is {distance_pct(abs(versus_high))} {where} {high}.")
    if distance.etf_price is not None:
        lines.append(
            f"At today's {etf_symbol}/{index.short} ratio that is about <b>{money(distance.etf_price, 2)}</b> "
            f"a share of {etf_symbol}."
        )
    lines += ["", footer(request.services, snapshot)]
    return Answer("\n".join(lines))


COMMANDS = (
    Command(
        "target",
        "How far an index is from a level, e.g. the Russell 2000 at 3,000",
        "/target LEVEL [index]",
        ("/target 3000", "/target 6000 spx"),
        target,
        market_only=True,
    ),
)


BUTTONS = ()
