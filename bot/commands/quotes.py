"""/price: a quick quote of any instrument capgap follows: its latest price, the day's change, and when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.answers import Answer, Command, Request, UsageError
from bot.format import clock_time, day, esc, number, pct
from bot.provenance import footer, snapshot_with
from market.instruments import ALL, Instrument, resolve

if TYPE_CHECKING:
    from market.cache import MarketSnapshot


@dataclass(frozen=True)
class Quoted:
    """An instrument's latest price and its change from the close before it."""

    price: float
    change: float | None  # in the instrument's units
    change_fraction: float | None
    as_of: str  # "18 Jan 2024 close" or "19 Jan 2024 14:35 ET"
    live: bool


def latest_quote(snapshot: MarketSnapshot, instrument: Instrument) -> Quoted | None:
    """The instrument's live price when one is newer than its last close, else that close; None without
    data. The change is against the close before the price (a live quote's own previous close first)."""
    closes = snapshot.series(instrument.symbol).dropna()
    if closes.empty:
        return None
    close, close_day = float(closes.iloc[-1]), closes.index[-1].date()
    live = snapshot.quotes.get(instrument.symbol)
    if live is not None and live.time.date() > close_day:
        base = live.previous_close or close
        return Quoted(live.price, live.price - base, live.price / base - 1, clock_time(live.time), True)
    if len(closes) < 2:
        return Quoted(close, None, None, f"{day(close_day)} close", False)
    previous = float(closes.iloc[-2])
    return Quoted(close, close - previous, close / previous - 1, f"{day(close_day)} close", False)


def known_names() -> str:
    return ", ".join(i.short.lower() for i in ALL)


def price(request: Request) -> Answer:
    if not request.args:
        return price_table(request)
    if len(request.args) > 1:
        raise UsageError(f"/price takes one name, e.g. <code>/price iwm</code>. Known: {esc(known_names())}.")
    instrument = resolve(request.args[0])
    if instrument is None:
        raise UsageError(
            f"I don't know “{esc(request.args[0][:20])}”. Try <code>/price rut</code> or "
            f"<code>/price iwm</code>; known: {esc(known_names())}. /price alone lists them all."
        )
    return price_answer(request, instrument)


def price_answer(request: Request, instrument: Instrument) -> Answer:
    snapshot = snapshot_with(request.services, instrument.symbol)
    quoted = latest_quote(snapshot, instrument)
    assert quoted is not None  # snapshot_with refuses an instrument without closes
    change = (
        "no earlier close to compare with"
        if quoted.change is None
        else f"{quoted.change:+,.2f} ({pct(quoted.change_fraction)}) on the day"
    )
    lines = [
        f"<b>{esc(instrument.short)}</b> · {esc(instrument.name)}",
        f"<b>{number(quoted.price)}</b> {change}",
        f"as of {esc(quoted.as_of)}{', live' if quoted.live else ''}",
    ]
    last_close = snapshot.series(instrument.symbol).dropna().index[-1].date()
    if snapshot.latest_day is not None and last_close < snapshot.latest_day:
        lines.append(
            f"⚠️ Its history ends on {day(last_close)}: there is no newer close of {esc(instrument.short)} "
            f"than that, while others have closes up to {day(snapshot.latest_day)}."
        )
    lines += ["", footer(request.services, snapshot)]
    return Answer("\n".join(lines))


def price_table(request: Request) -> Answer:
    """Every instrument in one table: price, the day's change, and its own as-of date (histories end on
    different days, so each row says how fresh it is)."""
    snapshot = request.services.market.snapshot
    rows = [f"{'':<5} {'price':>10} {'1D':>8}  as of"]
    for instrument in ALL:
        quoted = latest_quote(snapshot, instrument)
        if quoted is None:
            rows.append(f"{instrument.short:<5} {'–':>10} {'–':>8}  no data")
            continue
        rows.append(
            f"{instrument.short:<5} {number(quoted.price):>10} {pct(quoted.change_fraction):>8}  "
            f"{quoted.as_of.removesuffix(' close')}{' live' if quoted.live else ''}"
        )
    lines = [
        "<b>Prices</b> · the last close, or live during the session",
        f"<pre>{esc(chr(10).join(rows))}</pre>",
        "<code>/price iwm</code> for one, with its change in points.",
        "",
        footer(request.services, snapshot),
    ]
    return Answer("\n".join(lines))


COMMANDS = (
    Command(
        "price",
        "A quick quote: price, the day's change, as of when",
        "/price [name]",
        ("/price", "/price iwm", "/price rut"),
        price,
        market_only=True,
    ),
)
BUTTONS = ()
