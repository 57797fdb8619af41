"""Keeps the cache fresh from a source and hands out the current snapshot.

One ``refresh_prices`` call makes one batched request upstream, however many chats and rules there are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from market import calendar, plausibility
from market.cache import MarketCache, MarketSnapshot
from market.instruments import FUND_FACT_ETFS, INTRADAY_SYMBOLS, SYMBOLS
from market.model import MarketData, MarketRateLimited, MarketSource, MarketUnavailable

log = logging.getLogger(__name__)

# Re-fetch a few sessions back on each refresh so a late correction of a close replaces the cached one.
OVERLAP = timedelta(days=7)


@dataclass(frozen=True)
class RefreshResult:
    ok: bool
    rows: int
    detail: str
    rate_limited: bool = False


class MarketService:
    def __init__(
        self,
        source: MarketSource,
        cache: MarketCache,
        clock: Callable[[], datetime] | None = None,
        symbols: Sequence[str] = SYMBOLS,
        as_of: date | None = None,
    ) -> None:
        self.source = source
        self.cache = cache
        self.clock = clock or (lambda: datetime.now(UTC))
        self.symbols = tuple(symbols)
        self.as_of = as_of
        self._snapshot: MarketSnapshot | None = None
        self._lock = threading.Lock()  # one refresh at a time, whichever thread asks

    def now(self) -> datetime:
        return self.clock()

    @property
    def snapshot(self) -> MarketSnapshot:
        if self._snapshot is None:
            self._snapshot = self.cache.snapshot(self.as_of)
        return self._snapshot

    def is_fresh(self) -> bool:
        return not calendar.freshness(self.cache.latest_day(), self.now()).stale

    def refresh_prices(self) -> RefreshResult:
        """Fetch what is new since each symbol's newest close, screen it, store it, swap in a new snapshot.

        Symbols with cached closes are asked from the oldest of their newest closes (less ``OVERLAP``, so
        a late correction replaces the cached close and a symbol that failed last time catches up); a
        symbol with none is asked for its whole history, in a second request, so one missing symbol does
        not make every refresh re-download everything.
        """
        with self._lock:
            now = self.now()
            days = self.cache.latest_days()
            # During the session only the instruments marked ``intraday`` are asked (Yahoo answers each
            # symbol with a request of its own); the others' closes come after the close.
            asked = self.symbols
            if calendar.is_regular_hours(now):
                asked = tuple(s for s in self.symbols if s in INTRADAY_SYMBOLS) or self.symbols
            # A fund cached before adjusted closes were kept has its whole history asked again, once.
            lacking = self.cache.funds_without_adjusted()
            known = [s for s in asked if s in days and s not in lacking]
            new = [s for s in self.symbols if s not in days or s in lacking]
            batches: list[tuple[list[str], date | None]] = []
            if known:
                batches.append((known, min(days[s] for s in known) - OVERLAP))
            if new:
                batches.append((new, None))
            parts: list[MarketData] = []
            failures: list[MarketUnavailable] = []
            for symbols, since in batches:
                try:
                    parts.append(self.source.fetch(symbols, since=since))
                except MarketRateLimited as exc:
                    failures.append(exc)
                    break  # the source is backing off: asking again now would only be refused
                except MarketUnavailable as exc:
                    failures.append(exc)
            if not parts:
                failure = failures[0]
                log.warning("price refresh from %s failed: %s", self.source.name, failure.detail)
                self.cache.record_refresh(
                    "prices", now, False, self.source.name, failure.detail, failure.reason
                )
                self._snapshot = None
                return RefreshResult(False, 0, failure.reason, isinstance(failure, MarketRateLimited))
            for failure in failures:
                log.warning("price refresh from %s was partial: %s", self.source.name, failure.detail)
            data = _combined(parts)
            rows, held = self._store_screened(data, now)
            note = f"; {held} value(s) held aside as implausible" if held else ""
            self.cache.record_refresh("prices", now, True, data.source, f"{rows} closes{note}")
            self._snapshot = None
            return RefreshResult(True, rows, f"{rows} closes from {data.source}{note}")

    def _store_screened(self, data: MarketData, now: datetime) -> tuple[int, int]:
        """Store what passes ``market.plausibility``; record, log and count what does not."""
        closes = data.closes
        first_days = {
            str(s): pd.Timestamp(closes[s].first_valid_index()).date()  # type: ignore[arg-type]
            for s in closes.columns
            if closes[s].first_valid_index() is not None
        }
        prior = self.cache.closes_before(first_days)
        screened = plausibility.screen(closes, prior)
        quotes, held_quotes = plausibility.screen_quotes(data.quotes, screened.closes, screened.held, prior)
        held = screened.held + held_quotes
        adjusted, dropped = plausibility.screen_adjusted(screened.closes, data.adjusted)
        if dropped:
            log.warning("%d adjusted close(s) from %s left out as implausible", dropped, data.source)
        settled = calendar.last_closed_session(data.fetched_at)
        rows = self.cache.store(
            replace(data, closes=screened.closes, quotes=quotes, adjusted=adjusted), settled_through=settled
        )
        judged = {
            symbol: (first, pd.Timestamp(closes[symbol].last_valid_index()).date())  # type: ignore[arg-type]
            for symbol, first in first_days.items()
        }
        for value in self.cache.record_held(held, judged, now):
            log.warning(
                "%s %s of %s from %s held aside (%s): %r against %r; %s",
                value.kind,
                value.day,
                value.symbol,
                data.source,
                value.status,
                value.value,
                value.reference,
                value.reason,
            )
        return rows, len(held)

    def refresh_funds(self) -> RefreshResult:
        with self._lock:
            now = self.now()
            etfs = [e.symbol for e in FUND_FACT_ETFS if e.symbol in self.symbols]
            try:
                fetched = self.source.fetch_funds(etfs)
            except MarketUnavailable as exc:
                log.warning("fund refresh from %s failed: %s", self.source.name, exc.detail)
                self.cache.record_refresh("funds", now, False, self.source.name, exc.detail, exc.reason)
                return RefreshResult(False, 0, exc.reason, isinstance(exc, MarketRateLimited))
            facts = []
            for fact in fetched:
                checked, dropped = plausibility.plausible_fund(fact)
                if dropped:
                    log.warning(
                        "fund facts of %s (%s) from %s: implausible %s left out",
                        fact.symbol,
                        fact.as_of,
                        fact.source,
                        ", ".join(dropped),
                    )
                facts.append(checked)
            self.cache.store_funds(facts, now)
            self.cache.record_refresh("funds", now, True, self.source.name, f"{len(facts)} fund snapshots")
            self._snapshot = None
            return RefreshResult(True, len(facts), f"{len(facts)} fund snapshots")

    def ensure_loaded(self) -> None:
        """Fill an empty or stale cache before the first answer; a failure leaves what is cached."""
        if self.cache.latest_day() is None or not self.is_fresh():
            self.refresh_prices()
        if not self.cache.has_funds():  # asked of SQLite: building a snapshot here would be thrown away
            self.refresh_funds()


def _combined(parts: list[MarketData]) -> MarketData:
    """One refresh's data from the requests it took (each for different symbols)."""
    if len(parts) == 1:
        return parts[0]
    closes = pd.concat([p.closes for p in parts], axis=1, sort=True)
    quotes = {symbol: q for p in parts for symbol, q in p.quotes.items()}
    funds = [p.adjusted for p in parts if p.adjusted is not None]
    adjusted = pd.concat(funds, axis=1, sort=True).reindex(index=closes.index) if funds else None
    return MarketData(closes, quotes, parts[0].source, max(p.fetched_at for p in parts), adjusted=adjusted)
