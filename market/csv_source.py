"""Offline history: ``<SYMBOL without ^>_daily.csv`` files and an optional ``funds.csv``.

With ``as_of`` set, the source shows only what was known at that date's close, so every answer is what
it would have been then.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from market import calendar
from market.instruments import HEADLINE, by_symbol
from market.model import FundFacts, MarketData, MarketUnavailable, Quote

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


HEADLINE_SYMBOLS = tuple(i.symbol for i in HEADLINE)

# A broken file must not flood the log: its first few problems are named, the rest counted.
LOGGED_PROBLEMS = 5


def _read_clean(path: Path, mtime: float, column: str) -> pd.Series | None:
    """``column`` by date, read the quick way when the file is clean: exact headers, every row whole, every
    date YYYY-MM-DD, every cell a number or empty. None when it is not (then the careful reading below
    finds and reports what is wrong), or when the file has no such column. A clean file gives both the same
    series, in a third of the time (no text columns, no stripping)."""
    import numpy as np
    import pandas as pd

    frame = _clean_frame(path, mtime)
    if frame is None or column not in frame.columns:
        return None
    values = frame[column].to_numpy()
    keep = ~np.isnan(values)
    if not keep.any():
        return None
    series = pd.Series(values[keep], index=frame.index[keep], dtype="float64")
    series = series[~series.index.duplicated(keep="last")].sort_index()
    series.index.name = None
    return series


@lru_cache(maxsize=32)
def _clean_frame(path: Path, mtime: float) -> pd.DataFrame | None:
    """A clean history file's closes and adjusted closes, by date, read once for both (see ``_read_clean``)."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pd.read_csv(
                path,
                usecols=lambda name: name in ("date", "close", "adj_close"),
                dtype={"close": "float64", "adj_close": "float64"},
                on_bad_lines="warn",
                engine="c",
            )
            dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="raise")
        except (
            KeyError,
            ValueError,
            TypeError,
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            UnicodeDecodeError,
        ):
            return None
    if caught or frame.empty or "close" not in frame.columns:
        return None
    return frame.drop(columns="date").set_axis(pd.DatetimeIndex(dates), axis="index")


@lru_cache(maxsize=32)
def _read_closes(path: Path, mtime: float) -> pd.Series:
    """The ``date`` and ``close`` columns of a history file, skipping malformed rows with a warning.

    A row is malformed when its date is not YYYY-MM-DD, its close is not a number, or it has too few
    fields; an empty close is a day the source had no value for, not a fault. Whether a number is a
    plausible price is not judged here (``market.plausibility`` does that for every source). A file that
    exists but has no usable row raises ``MarketUnavailable``. Read once per file version (``mtime``).
    """
    clean = _read_clean(path, mtime, "close")
    return clean if clean is not None else _careful_closes(path)


def _careful_closes(path: Path) -> pd.Series:
    """``_read_closes`` for a file that is not clean: every cell read as text, each problem named."""
    import warnings

    import numpy as np
    import pandas as pd

    def unusable() -> MarketUnavailable:
        return MarketUnavailable(f"{path.name} has no usable rows (it needs date and close columns)")

    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # Text first, so one bad cell cannot fail the whole file; pandas' C parser keeps this fast.
            frame = pd.read_csv(
                path,
                usecols=lambda name: str(name).strip() in ("date", "close"),
                dtype=str,
                keep_default_na=False,
                on_bad_lines="warn",
            )
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise unusable() from exc
    skipped: list[int] = []
    for warning in caught:
        # pandas reports a ragged line as "Skipping line 9604: expected 7 fields, saw 8".
        for message in str(warning.message).splitlines():
            found = re.match(r"\s*Skipping line (\d+): (.*)", message)
            if found:
                skipped.append(int(found[1]))
                problems.append(f"line {found[1]}: {found[2].rstrip('.')}")
    frame.columns = [str(c).strip() for c in frame.columns]
    if "date" not in frame.columns or "close" not in frame.columns:
        raise unusable()

    def line_of(position: int) -> int:
        line = position + 2  # the header is line 1; each ragged line skipped before moves the rest down
        for ragged in sorted(skipped):
            if ragged <= line:
                line += 1
        return line

    dates = pd.to_datetime(frame["date"].str.strip(), format="%Y-%m-%d", errors="coerce")
    text = frame["close"].fillna("").str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad_date = dates.isna().to_numpy()
    bad_close = (~bad_date) & values.isna().to_numpy() & (text != "").to_numpy()
    # Spelled-out NaN and infinities parse: whether such a value is a price is the plausibility guard's call.
    for position in np.flatnonzero(bad_date | bad_close):
        line = line_of(int(position))
        if bad_date[position]:
            problems.append(f"line {line}: date {frame['date'].iloc[position]!r} is not a YYYY-MM-DD date")
        else:
            problems.append(f"line {line}: close {text.iloc[position]!r} is not a number")
    keep = ~bad_date & values.notna().to_numpy()
    series = pd.Series(values.to_numpy()[keep], index=pd.DatetimeIndex(dates[keep]), dtype="float64")
    days_found = bool(keep.any())
    if problems:
        shown = "; ".join(problems[:LOGGED_PROBLEMS])
        more = len(problems) - LOGGED_PROBLEMS
        log.warning(
            "%s: %d malformed row(s) skipped: %s%s",
            path.name,
            len(problems),
            shown,
            f"; and {more} more" if more > 0 else "",
        )
    if not days_found:
        raise unusable()
    series = series[~series.index.duplicated(keep="last")].sort_index()
    series.index.name = None
    return series


@lru_cache(maxsize=32)
def _read_adjusted(path: Path, mtime: float) -> pd.Series:
    """The ``adj_close`` column of a fund's history file by date: empty when the file has none. A cell
    that is not a number is a day without an adjusted close (its close is still read by ``_read_closes``,
    which warns about malformed rows)."""
    import pandas as pd

    clean = _read_clean(path, mtime, "adj_close")
    if clean is not None:
        return clean
    try:
        frame = pd.read_csv(
            path,
            usecols=lambda name: str(name).strip() in ("date", "adj_close"),
            dtype=str,
            keep_default_na=False,
            on_bad_lines="skip",
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return pd.Series(dtype="float64")
    frame.columns = [str(c).strip() for c in frame.columns]
    if "adj_close" not in frame.columns or "date" not in frame.columns:
        return pd.Series(dtype="float64")
    dates = pd.to_datetime(frame["date"].str.strip(), format="%Y-%m-%d", errors="coerce")
    values = pd.to_numeric(frame["adj_close"].str.strip(), errors="coerce")
    keep = dates.notna().to_numpy() & values.notna().to_numpy()
    series = pd.Series(values.to_numpy()[keep], index=pd.DatetimeIndex(dates[keep]), dtype="float64")
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
        # ``as_of``'s settled close, asked of the calendar on the first ``now``: a replayed bot reads its
        # clock on every request and every send.
        self._spoken: tuple[date, datetime] | None = None

    def now(self) -> datetime:
        """The moment this source speaks for: ``as_of``'s settled close, or the clock."""
        if self.as_of is None:
            return self._clock()
        if self._spoken is None or self._spoken[0] != self.as_of:
            close = (
                calendar.session_close(self.as_of)
                if calendar.is_session(self.as_of)
                else datetime.combine(self.as_of, datetime.max.time(), UTC)
            )
            self._spoken = (self.as_of, close + calendar.CLOSE_SETTLE)
        return self._spoken[1]

    def check(self) -> None:
        """Read every history file there is: MarketUnavailable, naming the file, if one has no usable row.
        (Malformed rows are only skipped and logged; a missing file is not an error.)"""
        from market.instruments import SYMBOLS

        for symbol in SYMBOLS:
            self._series(symbol)

    def _series(self, symbol: str) -> pd.Series | None:
        return self._column(symbol, _read_closes)

    def _adjusted(self, symbol: str) -> pd.Series | None:
        """A fund's adjusted closes (None for an index, or a file without them), cut at ``as_of``."""
        if by_symbol(symbol).kind != "etf":
            return None
        series = self._column(symbol, _read_adjusted)
        return series if series is not None and len(series) else None

    def _column(self, symbol: str, read: Callable[[Path, float], pd.Series]) -> pd.Series | None:
        """One column of ``symbol``'s CSV file as ``read`` gives it (cached by the file's mtime), cut at
        ``as_of``; None without the file."""
        path = self.directory / f"{by_symbol(symbol).file_stem}_daily.csv"
        if not path.is_file():
            return None
        series = read(path, path.stat().st_mtime)
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
                # Only the headline pair is missed: a directory may well hold no file (or no row yet, by
                # ``as_of``) for the other instruments, which answers then say they have no data for.
                level = logging.WARNING if symbol in HEADLINE_SYMBOLS else logging.INFO
                log.log(level, "no CSV history for %s in %s", symbol, self.directory)
                continue
            columns[symbol] = series
        if not columns:
            raise MarketUnavailable(f"no history files for {', '.join(symbols)} in {self.directory}")
        closes = pd.DataFrame(columns).sort_index().astype("float64")
        if since is not None:
            closes = closes[closes.index >= pd.Timestamp(since)]
        funds = {s: a for s in columns if (a := self._adjusted(s)) is not None}
        adjusted = pd.DataFrame(funds, index=closes.index, dtype="float64") if funds else None
        quotes = {}
        for symbol, series in columns.items():
            last_day = series.index[-1].date()
            previous = float(series.iloc[-2]) if len(series) > 1 else None
            when = calendar.session_close(last_day) if calendar.is_session(last_day) else self.now()
            quotes[symbol] = Quote(symbol, float(series.iloc[-1]), when, previous)
        return MarketData(
            closes=closes, quotes=quotes, source=self.name, fetched_at=self.now(), adjusted=adjusted
        )

    def fetch_funds(self, symbols: Sequence[str]) -> list[FundFacts]:
        import csv

        path = self.directory / "funds.csv"
        if not path.is_file():
            return []
        wanted = set(symbols)
        facts = []
        with path.open(newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                symbol = (row.get("symbol") or "").strip().upper()
                if symbol not in wanted:
                    continue
                try:
                    as_of = date.fromisoformat((row.get("as_of") or "").strip())
                except ValueError:
                    log.warning(
                        "funds.csv line %d: %s row skipped, as_of %r is not a date",
                        line,
                        symbol,
                        row.get("as_of"),
                    )
                    continue

                def cell(column: str, line: int = line, row: dict[str, str | None] = row) -> float | None:
                    text = row.get(column)
                    value = _number(text)
                    if value is None and text is not None and text.strip():
                        log.warning(
                            "funds.csv line %d: %s %r is not a number; left unknown", line, column, text
                        )
                    return value

                facts.append(
                    FundFacts(
                        symbol=symbol,
                        as_of=as_of,
                        expense_ratio=cell("expense_ratio"),
                        total_assets=cell("total_assets"),
                        price_to_book=cell("price_to_book"),
                        price_to_earnings=cell("price_to_earnings"),
                        source=f"funds.csv: {(row.get('source') or '').strip()}".rstrip(": "),
                    )
                )
        return self._known_at_as_of(facts)

    def _known_at_as_of(self, facts: list[FundFacts]) -> list[FundFacts]:
        """Snapshots dated on or before ``as_of``.

        Expense ratios and fund size change rarely and are often published a few days after the fact, so
        a fund with no earlier snapshot keeps its earliest one (its own date shows in every answer) —
        but without price-to-book or price-to-earnings, which move with the market and must never leak
        from the future.
        """
        if self.as_of is None:
            return facts
        known = [f for f in facts if f.as_of <= self.as_of]
        covered = {f.symbol for f in known}
        earliest: dict[str, FundFacts] = {}
        for f in facts:
            if f.symbol not in covered and (f.symbol not in earliest or f.as_of < earliest[f.symbol].as_of):
                earliest[f.symbol] = f
        return known + [replace(f, price_to_book=None, price_to_earnings=None) for f in earliest.values()]


def _number(text: str | None) -> float | None:
    """A finite number from a CSV cell; an empty or non-numeric cell is unknown, not zero."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
