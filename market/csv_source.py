"""Offline history: ``<SYMBOL without ^>_daily.csv`` files and an optional ``funds.csv``.

With ``as_of`` set, the source shows only what was known at that date's close, so every answer is what
it would have been then.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from market import calendar
from market.instruments import by_symbol
from market.model import FundFacts, MarketData, MarketUnavailable, Quote

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@lru_cache(maxsize=32)
def _read_closes(path: Path, mtime: float) -> pd.Series:
    import pandas as pd

    frame = pd.read_csv(path, usecols=["date", "close"], parse_dates=["date"])
    series = frame.set_index("date")["close"].astype("float64").dropna()
    series = series[~series.index.duplicated(keep="last")].sort_index()
    series.index.name = None
    return series


class CsvSource:
    def __init__(
        self, directory: Path, as_of: date | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.directory = Path(directory)
        self.as_of = as_of
        self._clock = clock or (lambda: datetime.now(UTC))
        self.name = f"CSV ({self.directory.name or self.directory})"

    def now(self) -> datetime:
        """The moment this source speaks for: ``as_of``'s settled close, or the clock."""
        if self.as_of is not None:
            close = (
                calendar.session_close(self.as_of)
                if calendar.is_session(self.as_of)
                else datetime.combine(self.as_of, datetime.max.time(), UTC)
            )
            return close + calendar.CLOSE_SETTLE
        return self._clock()

    def _series(self, symbol: str) -> pd.Series | None:
        path = self.directory / f"{by_symbol(symbol).file_stem}_daily.csv"
        if not path.is_file():
            return None
        series = _read_closes(path, path.stat().st_mtime)
        if self.as_of is not None:
            import pandas as pd

            series = series[series.index <= pd.Timestamp(self.as_of)]
        return series

    def fetch(self, symbols: Sequence[str], since: date | None = None) -> MarketData:
        import pandas as pd

        columns: dict[str, pd.Series] = {}
        for symbol in symbols:
            series = self._series(symbol)
            if series is None or series.empty:
                log.warning("no CSV history for %s in %s", symbol, self.directory)
                continue
            columns[symbol] = series
        if not columns:
            raise MarketUnavailable(f"no history files for {', '.join(symbols)} in {self.directory}")
        closes = pd.DataFrame(columns).sort_index().astype("float64")
        if since is not None:
            closes = closes[closes.index >= pd.Timestamp(since)]
        quotes = {}
        for symbol, series in columns.items():
            last_day = series.index[-1].date()
            previous = float(series.iloc[-2]) if len(series) > 1 else None
            when = calendar.session_close(last_day) if calendar.is_session(last_day) else self.now()
            quotes[symbol] = Quote(symbol, float(series.iloc[-1]), when, previous)
        return MarketData(closes=closes, quotes=quotes, source=self.name, fetched_at=self.now())

    def fetch_funds(self, symbols: Sequence[str]) -> list[FundFacts]:
        import csv

        path = self.directory / "funds.csv"
        if not path.is_file():
            return []
        wanted = set(symbols)
        facts = []
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                symbol = (row.get("symbol") or "").strip().upper()
                if symbol not in wanted:
                    continue
                try:
                    as_of = date.fromisoformat((row.get("as_of") or "").strip())
                except ValueError:
                    log.warning("funds.csv: skipping %s row with a bad as_of %r", symbol, row.get("as_of"))
                    continue
                facts.append(
                    FundFacts(
                        symbol=symbol,
                        as_of=as_of,
                        expense_ratio=_number(row.get("expense_ratio")),
                        total_assets=_number(row.get("total_assets")),
                        price_to_book=_number(row.get("price_to_book")),
                        source=f"funds.csv: {(row.get('source') or '').strip()}".rstrip(": "),
                    )
                )
        return self._known_at_as_of(facts)

    def _known_at_as_of(self, facts: list[FundFacts]) -> list[FundFacts]:
        """Snapshots dated on or before ``as_of``.

        Expense ratios and fund size change rarely and are often published a few days after the fact, so
        a fund with no earlier snapshot keeps its earliest one (its own date shows in every answer) —
        but without price-to-book, which moves with the market and must never leak from the future.
        """
        if self.as_of is None:
            return facts
        known = [f for f in facts if f.as_of <= self.as_of]
        covered = {f.symbol for f in known}
        earliest: dict[str, FundFacts] = {}
        for f in facts:
            if f.symbol not in covered and (f.symbol not in earliest or f.as_of < earliest[f.symbol].as_of):
                earliest[f.symbol] = f
        return known + [replace(f, price_to_book=None) for f in earliest.values()]


def _number(text: str | None) -> float | None:
    """A finite number from a CSV cell; an empty or non-numeric cell is unknown, not zero."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
