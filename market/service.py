"""Keeps the cache fresh from a source and hands out the current snapshot.

One ``refresh_prices`` call makes one batched request upstream, however many chats and rules there are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from market import calendar
from market.cache import MarketCache, MarketSnapshot
from market.instruments import ETFS, SYMBOLS
from market.model import MarketRateLimited, MarketSource, MarketUnavailable

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
        """Fetch what is new since the cache's newest close, store it, and swap in a new snapshot."""
        with self._lock:
            now = self.now()
            # From the oldest newest-close among the symbols, so one that failed last time is caught up;
            # the whole history while an index has none at all.
            days = self.cache.latest_days()
            since = None if self.cache.latest_day() is None else min(days.values()) - OVERLAP
            try:
                data = self.source.fetch(self.symbols, since=since)
            except MarketUnavailable as exc:
                log.warning("price refresh from %s failed: %s", self.source.name, exc)
                self.cache.record_refresh("prices", now, False, self.source.name, str(exc))
                self._snapshot = None
                return RefreshResult(False, 0, str(exc), isinstance(exc, MarketRateLimited))
            rows = self.cache.store(data, settled_through=calendar.last_closed_session(data.fetched_at))
            self.cache.record_refresh("prices", now, True, data.source, f"{rows} closes")
            self._snapshot = None
            return RefreshResult(True, rows, f"{rows} closes from {data.source}")

    def refresh_funds(self) -> RefreshResult:
        with self._lock:
            now = self.now()
            etfs = [e.symbol for e in ETFS if e.symbol in self.symbols]
            try:
                facts = self.source.fetch_funds(etfs)
            except MarketUnavailable as exc:
                log.warning("fund refresh from %s failed: %s", self.source.name, exc)
                self.cache.record_refresh("funds", now, False, self.source.name, str(exc))
                return RefreshResult(False, 0, str(exc), isinstance(exc, MarketRateLimited))
            self.cache.store_funds(facts, now)
            self.cache.record_refresh("funds", now, True, self.source.name, f"{len(facts)} fund snapshots")
            self._snapshot = None
            return RefreshResult(True, len(facts), f"{len(facts)} fund snapshots")

    def ensure_loaded(self) -> None:
        """Fill an empty or stale cache before the first answer; a failure leaves what is cached."""
        if self.cache.latest_day() is None or not self.is_fresh():
            self.refresh_prices()
        if self.snapshot.funds.empty:
            self.refresh_funds()
