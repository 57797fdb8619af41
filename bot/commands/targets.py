"""/target: how far an index is from a level, e.g. the Russell 2000 at 3,000."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from bot.core import Answer, Command, Request, UsageError
from bot.format import day, esc, money, number, pct
from bot.provenance import footer, snapshot_with
from market.instruments import INDICES, PROXY_ETF, RUT, resolve

if TYPE_CHECKING:
    from telegram.ext import Application

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
    return value


def target(request: Request) -> Answer:
    from market import metrics

    if not request.args or len(request.args) > 2:
        raise UsageError(USAGE)
    level = parse_level(request.args[0])
    index = RUT
    if len(request.args) == 2:
        found = resolve(request.args[1])
        if found is None or found not in INDICES:
            names = "rut, russell, r2k, small, spx, sp500, s&amp;p, large"
            raise UsageError(f"I don't know the index “{esc(request.args[1][:20])}”. Use one of: {names}.")
        index = found
    etf_symbol = PROXY_ETF[index.symbol]
    snapshot = snapshot_with(request.services, index.symbol)
    series = snapshot.series(index.symbol)
    distance = metrics.target_distance(level, series, snapshot.series(etf_symbol), etf_symbol)
    mark = metrics.high_mark(series)
    if distance is None or mark is None:
        raise UsageError(f"No closes for the {index.name} yet. Please try again later.")

    last = f"{number(distance.last)} ({day(mark.last_date)} close)"
    if distance.change_needed > 0:
        head = (
            f"The <b>{index.name}</b> needs <b>{pct(distance.change_needed)}</b> to reach "
            f"{number(level, 0)} from {last}."
        )
    elif distance.change_needed < 0:
        head = (
            f"The <b>{index.name}</b> is {pct(-distance.change_needed, signed=False)} above "
            f"{number(level, 0)}: a fall of {pct(distance.change_needed)} from {last} would take it there."
        )
    else:
        head = f"The <b>{index.name}</b> closed exactly at {number(level, 0)}."
    lines = [head]
    versus_high = level / mark.high - 1
    lines.append(
        f"{number(level, 0)} is {pct(versus_high)} {'above' if versus_high > 0 else 'from'} its all-time "
        f"closing high of {number(mark.high)} ({day(mark.high_date)})."
    )
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


def register(application: Application) -> None:  # type: ignore[type-arg]
    from bot.telegram import add_commands

    add_commands(application, COMMANDS)
