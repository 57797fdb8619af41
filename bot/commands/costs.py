"""/etf: what the small- and large-cap ETFs cost over a holding period."""

from __future__ import annotations

import math
import re

from bot.answers import Answer, Command, Request, UsageError
from bot.format import big_money, day, esc, money
from bot.provenance import footer
from market import metrics
from market.instruments import ETFS, LARGE_CAP_ETFS, SMALL_CAP_ETFS
from market.model import EXPENSE_RATIO_CEILING

DEFAULT_AMOUNT = 10_000.0
DEFAULT_YEARS = 10.0
GROSS_RETURN = 0.07  # assumed yearly return before fees; stated in every answer
MAX_AMOUNT = 1e12
MAX_YEARS = 60

_AMOUNT = re.compile(r"^\$?([0-9][0-9,]*(?:\.[0-9]+)?)([km]?)$", re.IGNORECASE)
USAGE = (
    "Usage: <code>/etf [amount] [years]</code>, e.g. <code>/etf 25000 20</code> or <code>/etf 50k 5</code>."
)


def parse_amount(text: str) -> float:
    match = _AMOUNT.match(text.strip())
    if not match:
        raise UsageError(f"“{esc(text[:20])}” is not an amount of money. {USAGE}")
    value = float(match.group(1).replace(",", "")) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    if not (0 < value <= MAX_AMOUNT) or not math.isfinite(value):
        raise UsageError(f"The amount must be more than $0 and at most {money(MAX_AMOUNT)}. {USAGE}")
    return value


def parse_years(text: str) -> float:
    cleaned = text.strip().lower().removesuffix("years").removesuffix("y").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise UsageError(f"“{esc(text[:20])}” is not a number of years. {USAGE}") from None
    if not (0 < value <= MAX_YEARS) or not math.isfinite(value):
        raise UsageError(f"The holding period must be more than 0 and at most {MAX_YEARS} years. {USAGE}")
    return value


def rate(expense_ratio: float) -> str:
    """0.0019 -> '0.19%', 0.000945 -> '0.0945%': as many decimals as the published figure has."""
    text = f"{expense_ratio * 100:.4f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}%"


def etf(request: Request) -> Answer:
    if len(request.args) > 2:
        raise UsageError(USAGE)
    amount = parse_amount(request.args[0]) if request.args else DEFAULT_AMOUNT
    years = parse_years(request.args[1]) if len(request.args) > 1 else DEFAULT_YEARS
    snapshot = request.services.market.snapshot
    span = f"{years:g} year{'s' if years != 1 else ''}"

    facts = {f.symbol: f for f in (snapshot.fund(e.symbol) for e in ETFS) if f is not None}
    costs = {
        symbol: metrics.fee_cost(amount, years, f.expense_ratio, GROSS_RETURN)
        for symbol, f in facts.items()
        # A ratio outside what an index ETF charges is a data error: that fund shows as unknown.
        if f.expense_ratio is not None and 0 <= f.expense_ratio < EXPENSE_RATIO_CEILING
    }
    if not costs:
        reason = snapshot.last_error or "no fund facts have been fetched yet"
        return Answer(f"⚠️ ETF expense ratios are unavailable right now ({esc(reason)}). Please try later.")

    lines = [
        f"<b>ETF costs</b> · {money(amount)} held {span}",
        f"<i>growing {GROSS_RETURN:.0%} a year before fees; each year's fee comes out of the balance at the "
        f"year's end, so the 1st year's is {money(amount * (1 + GROSS_RETURN))} × the fee</i>",
        "",
    ]
    table = [f"{'':<5} {'fee/yr':>7} {'1st yr':>9} {'over ' + span:>13}"]
    for title, group in (
        ("Small caps (Russell 2000)", SMALL_CAP_ETFS),
        ("Large caps (S&P 500)", LARGE_CAP_ETFS),
    ):
        table.append(title)
        for symbol in group:
            cost = costs.get(symbol)
            if cost is None:
                table.append(f"{symbol:<5} {'unknown':>7}")
                continue
            table.append(
                f"{symbol:<5} {rate(cost.expense_ratio):>7} {money(cost.first_year_fee):>9} {money(cost.cost):>13}"
            )
    lines.append(f"<pre>{esc(chr(10).join(table))}</pre>")

    for group in (SMALL_CAP_ETFS, LARGE_CAP_ETFS):
        priced = sorted((costs[s].cost, s) for s in group if s in costs)
        if len(priced) >= 2 and priced[-1][0] > priced[0][0]:
            (low, cheap), (high, dear) = priced[0], priced[-1]
            lines.append(f"{cheap} instead of {dear} keeps <b>{money(high - low)}</b> more over {span}.")
    sizes = [f"{f.symbol} {big_money(f.total_assets)}" for f in facts.values() if f.total_assets is not None]
    if sizes:
        lines.append("Total assets: " + ", ".join(sizes) + ".")
    dates = ", ".join(day(d) for d in sorted({f.as_of for f in facts.values()}))
    sources = ", ".join(sorted({f.source.split(":")[0] for f in facts.values()}))
    lines += ["", f"<i>fund facts as of {dates} · {esc(sources[:300])}</i>"]
    if not snapshot.closes.empty:
        lines.append(footer(request.services, snapshot))
    return Answer("\n".join(lines))


COMMANDS = (
    Command(
        "etf",
        "What IWM, VTWO, SPY, VOO and IVV cost you over your holding period",
        "/etf [amount] [years]",
        ("/etf", "/etf 25000 20"),
        etf,
        market_only=True,
    ),
)


BUTTONS = ()
