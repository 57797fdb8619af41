"""Where an answer's numbers come from and how fresh they are: the footer every market answer carries."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from bot.answers import UsageError
from bot.format import clock_time, day, esc, number, pct
from market import calendar
from market.instruments import by_symbol

if TYPE_CHECKING:
    from bot.services import Services
    from market.cache import MarketSnapshot
    from market.plausibility import HeldValue

# A held value is mentioned under answers while it is this recent (calendar days before the newest close).
HELD_NOTE_DAYS = 10
HELD_NOTE_MAX = 3


class MarketDataMissing(UsageError):
    """Nothing cached to answer from; the message says why and what to do."""


def snapshot_with(services: Services, *symbols: str) -> MarketSnapshot:
    """The current snapshot, or a clear 'unavailable' reply when it lacks ``symbols``."""
    snapshot = services.market.snapshot
    missing = [s for s in symbols if snapshot.series(s).empty]
    if missing:
        reason = snapshot.last_error or "no prices have been fetched yet"
        raise MarketDataMissing(
            f"⚠️ Market data is unavailable right now ({esc(reason)}) for {esc(', '.join(missing))}. "
            "I keep retrying in the background: please ask again in a few minutes."
        )
    return snapshot


def footer(services: Services, snapshot: MarketSnapshot, as_of: date | None = None) -> str:
    """'as of 18 Jan 2024 close · CSV (data)', with a warning when the closes lag the NYSE calendar.

    ``as_of`` is the day an answer about other instruments than the headline pair is measured on (the
    last close its instruments share); by default, the newest close both headline indices have."""
    latest = as_of or snapshot.latest_day
    if latest is None:
        return "<i>no market data yet</i>"
    source = esc(snapshot.source or services.market.source.name)
    line = f"<i>as of {day(latest)} close · {source}</i>"
    fresh = calendar.freshness(latest, services.now())
    if fresh.stale:
        behind = fresh.sessions_behind
        line += (
            f"\n⚠️ <i>stale: the newest close is {day(latest)}, {behind} trading "
            f"day{'s' if behind != 1 else ''} behind the NYSE calendar ({day(fresh.expected)})</i>"
        )
    if snapshot.last_error:
        line += f"\n<i>last refresh failed: {esc(snapshot.last_error)}</i>"
    recent = [h for h in snapshot.held if (latest - h.day).days <= HELD_NOTE_DAYS][:HELD_NOTE_MAX]
    for value in recent:
        line += f"\n⚠️ <i>{esc(held_line(value))}</i>"
    return line


def held_line(value: HeldValue) -> str:
    """'not used: RUT close of 5 Mar 2026, 1,000,000,000,000.00 (+52,000,000,000.00% in a day; …)'."""
    try:
        name = by_symbol(value.symbol).short
    except KeyError:
        name = value.symbol
    what = "close" if value.kind == "close" else "live price"
    shown = number(value.value) if value.value == value.value else "a missing value"
    verdict = "held until confirmed" if value.status == "unconfirmed" else "not used"
    return f"{verdict}: {name} {what} of {day(value.day)}, {shown} ({value.reason})"


def live_note(snapshot: MarketSnapshot, symbol: str) -> str | None:
    """'now 2,051.20 (+0.42%) at 14:35 ET' when a quote is newer than the last close."""
    quote = snapshot.quotes.get(symbol)
    latest = snapshot.latest_day
    if quote is None or latest is None or quote.time.date() <= latest:
        return None
    base = quote.previous_close or float(snapshot.series(symbol).iloc[-1])
    change = quote.price / base - 1 if base else None

    return f"now {number(quote.price)} ({pct(change)}) at {clock_time(quote.time)}"
