"""The values alert rules are judged on, derived from a closes frame (``market.model``) and the gap history.

Every value carries a string key:

- a Yahoo symbol (``"^RUT"``, ``"IWM"``…): its price;
- ``"<symbol>:move"``: the change from the previous close, in percent, signed (+2.0 = up 2%);
- ``"<symbol>:drawdown"``: how far the price sits below the all-time closing high, in percent, >= 0;
- ``"RATIO"``: the ^RUT / ^GSPC price ratio;
- ``"LEAD:<window>"``: the Russell 2000's return minus the S&P 500's over the window, in percentage points,
  with the base-date convention of ``market.metrics`` (the last close on or before the same calendar date one
  window earlier; months clipped to the month's end; ytd from the last close of the previous year);
- ``"GAP"``: the valuation gap on price-to-book (1 − P/B small ÷ P/B large) in percent (42.0, not 0.42);
- ``"PEGAP"``: the same on price-to-earnings. Both are the trusted two-pair readings of ``market.valuation``
  (``GAP_MEASURES`` names each key's measure there).

"Previous close", "all-time closing high" and the window bases are taken from each symbol's own closes with
missing values dropped, as ``market.metrics`` does, so the closes frame must hold the whole history a rule
should know about (a frame starting in 2020 knows no higher high than 2020's).

``derived_series`` computes every key for every date at once (replay, preview); ``observations_at`` turns
one date of it into close observations; ``live_observations`` computes the same keys from live quotes
against the closes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from market.calendar import NEW_YORK, REGULAR_CLOSE
from market.instruments import GSPC, RUT, SYMBOLS
from market.model import Quote

RATIO_KEY = "RATIO"
GAP_KEY = "GAP"
PEGAP_KEY = "PEGAP"
# Each valuation-gap key and the measure of ``market.valuation`` it is read from.
GAP_MEASURES: dict[str, str] = {GAP_KEY: "pb", PEGAP_KEY: "pe"}
LEAD_PREFIX = "LEAD:"
WINDOWS: tuple[str, ...] = ("1w", "1m", "3m", "6m", "ytd", "1y", "3y", "5y", "10y")

SMALL, LARGE = RUT.symbol, GSPC.symbol
# A close observation's time is the regular close (market.calendar.REGULAR_CLOSE) even on a half day: it
# only labels the alert — its session is what evaluation goes by.
# A quote older than this is not "live" any more: judging on it could fire at 3 a.m. on Friday's price.
DEFAULT_MAX_QUOTE_AGE = timedelta(minutes=30)
# A gap snapshot is carried forward to later trading dates for at most this long; after that the gap is
# unknown rather than guessed from an old snapshot.
GAP_MAX_AGE = timedelta(days=10)


@dataclass(frozen=True, slots=True)
class Observation:
    """One value of one key, as evaluation sees it."""

    key: str
    value: float
    time: datetime  # timezone-aware
    session: date  # the trading date the value belongs to
    is_close: bool  # the official close of ``session`` (else a live value during it)
    stale: bool = False  # known to be out of date: never fires a rule, never changes its state

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError(f"observation time must be timezone-aware, got {self.time!r}")


def close_time(session: date) -> datetime:
    """When the session's regular close happens (16:00 New York)."""
    return datetime.combine(session, REGULAR_CLOSE, tzinfo=NEW_YORK)


def parse_key(key: str) -> tuple[str, str | None]:
    """What a key measures: ("price" | "move" | "drawdown", symbol), ("ratio", None), ("gap", "pb" | "pe")
    or ("lead", window). ValueError for a key capgap does not know."""
    if key == RATIO_KEY:
        return "ratio", None
    if key in GAP_MEASURES:
        return "gap", GAP_MEASURES[key]
    if key.startswith(LEAD_PREFIX):
        window = key[len(LEAD_PREFIX) :]
        if window in WINDOWS:
            return "lead", window
    symbol, _, measure = key.partition(":")
    if symbol in SYMBOLS and measure in ("", "move", "drawdown"):
        return measure or "price", symbol
    raise ValueError(f"unknown observation key {key!r}")


def window_start(dates: pd.DatetimeIndex, window: str) -> pd.DatetimeIndex:
    """For each date, the calendar date a ``window`` reaches back to (before picking the last close on or
    before it)."""
    dates = pd.DatetimeIndex(dates).as_unit("ns")
    if window == "ytd":
        # The start of each date's year, minus a day: December 31 of the previous year.
        years = (dates.year.to_numpy() - 1970).astype("datetime64[Y]").astype("datetime64[ns]")
        return pd.DatetimeIndex(years - np.timedelta64(1, "D"))
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}: use one of {', '.join(WINDOWS)}")
    count, unit = int(window[:-1]), window[-1]
    if unit == "w":
        return dates - pd.Timedelta(weeks=count)
    months = count if unit == "m" else 12 * count
    return pd.DatetimeIndex(dates - pd.DateOffset(months=months)).as_unit("ns")


def base_positions(dates: pd.DatetimeIndex, window: str) -> np.ndarray:
    """For each of ``dates`` (one series' valid close dates, ascending), the position in ``dates`` of its
    base close for ``window``, or -1 when the history starts after the window's start."""
    dates = pd.DatetimeIndex(dates).as_unit("ns")
    targets = window_start(dates, window)
    return np.asarray(dates.searchsorted(targets, side="right"), dtype=np.int64) - 1


def derived_series(
    closes: pd.DataFrame,
    keys: Iterable[str],
    gap: pd.Series | None = None,
    *,
    pegap: pd.Series | None = None,
) -> pd.DataFrame:
    """Every requested key on every date of ``closes`` (NaN where it is not known).

    ``gap`` (P/B) and ``pegap`` (P/E) are valuation-gap histories as fractions, like
    ``market.metrics.valuation_gap`` (0.42 for a 42% discount), indexed by snapshot date; each trading date
    takes the latest snapshot on or before it, for at most ``GAP_MAX_AGE``. A NaN snapshot (a reading its
    twins contradict) is unknown, and stops the carrying forward of the one before it. Without a history
    its column is all NaN.
    """
    index = pd.DatetimeIndex(closes.index)
    columns: dict[str, pd.Series] = {}
    for key in dict.fromkeys(keys):
        measure, arg = parse_key(key)
        if measure == "price":
            columns[key] = _column(closes, arg).reindex(index)
        elif measure == "move":
            valid = _valid(_column(closes, arg))
            columns[key] = ((valid / valid.shift(1) - 1.0) * 100.0).reindex(index)
        elif measure == "drawdown":
            valid = _valid(_column(closes, arg))
            columns[key] = ((1.0 - valid / valid.cummax()) * 100.0).reindex(index)
        elif measure == "ratio":
            columns[key] = _column(closes, SMALL) / _column(closes, LARGE)
        elif measure == "lead":
            assert arg is not None
            small = _window_return(_valid(_column(closes, SMALL)), arg).reindex(index)
            large = _window_return(_valid(_column(closes, LARGE)), arg).reindex(index)
            columns[key] = (small - large) * 100.0
        else:
            columns[key] = _gap_on(index, gap if arg == "pb" else pegap) * 100.0
    frame = pd.DataFrame(columns, index=index)
    return frame.astype("float64")


def _column(closes: pd.DataFrame, symbol: str | None) -> pd.Series:
    if symbol not in closes.columns:
        raise ValueError(f"the closes frame has no {symbol} column, which this alert needs")
    return closes[symbol].astype("float64")


def _valid(series: pd.Series) -> pd.Series:
    values = series.to_numpy()
    return series[np.isfinite(values) & (values > 0)]


def _window_return(valid: pd.Series, window: str) -> pd.Series:
    """The return (a fraction) over ``window`` on each of ``valid``'s dates."""
    values = valid.to_numpy()
    positions = base_positions(pd.DatetimeIndex(valid.index), window)
    found = positions >= 0
    result = np.full(len(values), np.nan)
    result[found] = values[found] / values[positions[found]] - 1.0
    return pd.Series(result, index=valid.index)


def _gap_on(index: pd.DatetimeIndex, gap: pd.Series | None) -> pd.Series:
    if gap is None:
        return pd.Series(np.nan, index=index)
    # NaN snapshots stay: a contradicted reading is the latest one on its dates, and it is unknown.
    snapshots = gap.astype("float64")
    if (snapshots.abs() > 1.0).any():
        # A gap of more than 100% cannot come from two positive price-to-book values: these are percents.
        raise ValueError("the gap history must be a fraction (0.42 for 42%), as market.metrics gives it")
    snapshots.index = pd.DatetimeIndex(snapshots.index).as_unit("ns")
    snapshots = snapshots[~snapshots.index.duplicated(keep="last")].sort_index()  # a day's last, NaN or not
    dates = index.as_unit("ns")
    positions = np.asarray(snapshots.index.searchsorted(dates, side="right"), dtype=np.int64) - 1
    found = positions >= 0
    snapshot_dates = snapshots.index.to_numpy()[np.where(found, positions, 0)]
    fresh = found & (dates.to_numpy() - snapshot_dates <= np.timedelta64(GAP_MAX_AGE))
    values = np.where(fresh, snapshots.to_numpy()[np.where(found, positions, 0)], np.nan)
    return pd.Series(values, index=index)


def observations_at(
    source: pd.DataFrame | pd.Series,
    when: date | pd.Timestamp | None = None,
    *,
    at: datetime | None = None,
) -> dict[str, Observation]:
    """The close observations of one trading date: ``source`` is a ``derived_series`` frame (then ``when``
    picks the date) or one row of it (named by its date). Unknown values are left out, and a date with no
    row — a holiday — gives no observations. ``at`` is the time to stamp (default: that day's close)."""
    if isinstance(source, pd.DataFrame):
        if when is None:
            raise TypeError("observations_at needs the date when given a whole frame")
        stamp = pd.Timestamp(when).normalize()
        if stamp not in source.index:
            return {}
        row = source.loc[stamp]
    else:
        row = source
        stamp = pd.Timestamp(row.name)  # type: ignore[arg-type]
    return close_observations(row.index, row.to_numpy(dtype="float64"), stamp.date(), at=at)


def close_observations(
    keys: Iterable[object], values: Iterable[float], session: date, *, at: datetime | None = None
) -> dict[str, Observation]:
    """Close observations of ``session`` from parallel keys and values, leaving out unknown values."""
    moment = at or close_time(session)
    return {
        str(key): Observation(str(key), float(value), moment, session, True)
        for key, value in zip(keys, values, strict=True)
        if math.isfinite(value)
    }


def live_observations(
    closes: pd.DataFrame,
    quotes: Mapping[str, Quote | tuple[float, datetime]],
    session: date,
    *,
    keys: Iterable[str] | None = None,
    now: datetime | None = None,
    max_age: timedelta = DEFAULT_MAX_QUOTE_AGE,
    previous_session: date | None = None,
) -> dict[str, Observation]:
    """Observations from live prices during ``session``, against the closes of earlier sessions.

    Gives every key the quotes allow (or only ``keys``): each quoted symbol's price, move and drawdown; the
    ratio and the leads when both indices are quoted. A value is stale when its quote is not from
    ``session`` (New York date), is older than ``max_age`` at ``now``, or — for a move, given
    ``previous_session`` — when the latest close on file is not that session's (the change would span more
    than a day). The valuation gap is not live: it comes in as a close observation from its daily snapshot.
    """
    wanted = None if keys is None else set(keys)
    before = closes.loc[pd.DatetimeIndex(closes.index) < pd.Timestamp(session)]
    out: dict[str, Observation] = {}

    def put(key: str, value: float, moment: datetime, stale: bool) -> None:
        if wanted is None or key in wanted:
            out[key] = Observation(key, float(value), moment, session, False, stale)

    live: dict[str, tuple[float, datetime, bool]] = {}
    for symbol, quote in quotes.items():
        price, moment = (quote.price, quote.time) if isinstance(quote, Quote) else quote
        stale = moment.astimezone(NEW_YORK).date() != session or (now is not None and now - moment > max_age)
        live[symbol] = (float(price), moment, stale)
        put(symbol, price, moment, stale)
        if symbol not in before.columns:
            continue
        past = _valid(before[symbol].astype("float64"))
        if past.empty:
            continue
        previous = float(past.iloc[-1])
        gap_day = previous_session is not None and past.index[-1].date() != previous_session
        put(f"{symbol}:move", (price / previous - 1.0) * 100.0, moment, stale or gap_day)
        put(f"{symbol}:drawdown", max(0.0, (1.0 - price / float(past.max())) * 100.0), moment, stale)

    if SMALL in live and LARGE in live:
        (small, small_time, small_stale), (large, large_time, large_stale) = live[SMALL], live[LARGE]
        moment, stale = min(small_time, large_time), small_stale or large_stale
        put(RATIO_KEY, small / large, moment, stale)
        small_past, large_past = (_valid(before[s].astype("float64")) for s in (SMALL, LARGE))
        for window in WINDOWS:
            if wanted is not None and f"{LEAD_PREFIX}{window}" not in wanted:
                continue  # a lead no rule watches: its two base closes cost more than the rest together
            small_base, large_base = (_base_close(p, session, window) for p in (small_past, large_past))
            if small_base is None or large_base is None:
                continue
            lead = ((small / small_base - 1.0) - (large / large_base - 1.0)) * 100.0
            put(f"{LEAD_PREFIX}{window}", lead, moment, stale)
    return out


def _base_close(past: pd.Series, session: date, window: str) -> float | None:
    """The base close for ``window`` counted back from ``session``, from the closes before it."""
    if past.empty:
        return None
    start = window_start(pd.DatetimeIndex([pd.Timestamp(session)]), window)[0]
    position = int(pd.DatetimeIndex(past.index).as_unit("ns").searchsorted(start, side="right")) - 1
    return float(past.iloc[position]) if position >= 0 else None
