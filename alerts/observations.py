"""The values alert rules are judged on, derived from a closes frame (``market.model``) and the gap history.

Every value carries a string key:

- a Yahoo symbol (``"^RUT"``, ``"IWM"``…): its price;
- ``"<symbol>:move"``: the change from the previous close, in percent, signed (+2.0 = up 2%);
- ``"<symbol>:drawdown"``: how far the price sits below the all-time closing high, in percent, >= 0;
- ``"RATIO"``: the ^RUT / ^GSPC price ratio;
- ``"LEAD:<window>:tr"``: the same on total returns, dividends included: IWM's minus SPY's over the window,
  from the funds' adjusted closes (an ``adjusted`` frame, ``market.model``); only at the close;
- ``"LEAD:<window>"``: the Russell 2000's return minus the S&P 500's over the window, in percentage points,
  with the base-date convention of ``market.metrics`` (the last close on or before the same calendar date one
  window earlier; months clipped to the month's end; ytd from the last close of the previous year);
- ``"GAP"``: the valuation gap on price-to-book (1 − P/B small ÷ P/B large) in percent (42.0, not 0.42);
- ``"PEGAP"``: the same on price-to-earnings. Both are the trusted two-pair readings of ``market.valuation``
  (``GAP_MEASURES`` names each key's measure there);
- ``"<symbol>:move:<window>"``: the change over a window (``WINDOWS``), close to close, in percent, signed;
- ``"<base>:ma<N>"``: the base divided by its N-session simple average (1.02 = 2% above the average), where
  the base is a symbol's price or a ratio; ``"<base>:ma<N>/ma<M>"``: the N-session average divided by the
  M-session one (above 1 after a golden cross, below 1 after a death cross);
- ``"RATIO:<A>/<B>"``: the price ratio of two symbols (``"RATIO"`` alone is ^RUT / ^GSPC); a ratio key
  followed by ``":z"`` is its z-score against every earlier day, by ``":mean"`` the ratio divided by that
  mean (``market.metrics.ratio_history``);
- ``"ALL:<clause>&<clause>…"``: 1.0 while every clause holds, 0.0 while one does not, unknown while one is;
  a clause is a key, ``>`` (at or above) or ``<`` (at or below), and a level: ``"ALL:^RUT:ma200>1&RATIO<0.4"``.

"Previous close", "all-time closing high" and the window bases are taken from each symbol's own closes with
missing values dropped, as ``market.metrics`` does, so the closes frame must hold the whole history a rule
should know about (a frame starting in 2020 knows no higher high than 2020's).

``derived_series`` computes every key for every date at once (replay, preview); ``observations_at`` turns
one date of it into close observations; ``live_observations`` computes the same keys from live quotes
against the closes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from market.calendar import NEW_YORK, REGULAR_CLOSE
from market.instruments import GSPC, IWM, RUT, SPY, SYMBOLS
from market.metrics import MIN_Z_DAYS, moving_average, ratio_history
from market.model import Quote

RATIO_KEY = "RATIO"
GAP_KEY = "GAP"
PEGAP_KEY = "PEGAP"
# Each valuation-gap key and the measure of ``market.valuation`` it is read from.
GAP_MEASURES: dict[str, str] = {GAP_KEY: "pb", PEGAP_KEY: "pe"}
LEAD_PREFIX = "LEAD:"
WINDOWS: tuple[str, ...] = ("1w", "1m", "3m", "6m", "ytd", "1y", "3y", "5y", "10y")

ALL_PREFIX = "ALL:"
MAX_CLAUSES = 3
# The moving averages a rule may watch, in sessions.
AVERAGE_SESSIONS = (5, 400)

SMALL, LARGE = RUT.symbol, GSPC.symbol
# The funds a total-return lead compares: the oldest Russell 2000 and S&P 500 funds, with adjusted closes
# since 2000 (VTWO and VOO start in 2010).
TR_SMALL, TR_LARGE = IWM.symbol, SPY.symbol
TOTAL_RETURN = "tr"
_AVERAGE = re.compile(r"ma([1-9]\d{0,2})")  # one spelling per length: no leading zero
_CLAUSE = re.compile(r"(?P<key>[^<>&]+)(?P<op>[<>])(?P<level>[-+0-9.e]+)")
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


@dataclass(frozen=True, slots=True)
class Clause:
    """One condition of a combined key: ``key`` at or above (``above``) or at or below ``level``."""

    key: str
    above: bool
    level: float

    def holds(self, value: float) -> bool:
        return value >= self.level if self.above else value <= self.level

    @property
    def text(self) -> str:
        return f"{self.key}{'>' if self.above else '<'}{self.level!r}"


@dataclass(frozen=True, slots=True)
class KeyParts:
    """A key taken apart (see the module docstring for the keys).

    ``measure`` is one of price, move, drawdown, ratio, lead, gap (as ``parse_key`` gives them), or window
    (a move over ``window``), average (the base over its ``sessions[0]``-session average), averages (the
    ``sessions[0]``-session average over the ``sessions[1]``-session one), z, mean, all. ``base`` is the
    symbol or ratio key the measure is taken of; ``clauses`` are a combined key's conditions."""

    measure: str
    base: str | None = None
    window: str | None = None
    sessions: tuple[int, ...] = ()
    clauses: tuple[Clause, ...] = ()

    @property
    def symbol(self) -> str | None:
        """The instrument the key is about, when it is about one."""
        return self.base if self.base in SYMBOLS else None

    @property
    def pair(self) -> tuple[str, str]:
        """The two symbols of a ratio base (^RUT and ^GSPC for ``"RATIO"``)."""
        if self.base is None or not self.base.startswith(RATIO_KEY):
            raise ValueError(f"{self.base!r} is not a ratio")
        if self.base == RATIO_KEY:
            return SMALL, LARGE
        small, _, large = self.base[len(RATIO_KEY) + 1 :].partition("/")
        return small, large


def parse_key(key: str) -> tuple[str, str | None]:
    """What a key measures, as ("price" | "move" | "drawdown", symbol), ("ratio", None or "A/B"),
    ("gap", "pb" | "pe") or ("lead", window); the other measures with their base symbol or ratio key
    (``key_parts`` tells more). ValueError for a key capgap does not know."""
    parts = key_parts(key)
    if parts.measure in ("lead", "leadtr", "gap"):
        return parts.measure, parts.window
    if parts.measure == "ratio":
        return "ratio", None if parts.base == RATIO_KEY else (parts.base or "")[len(RATIO_KEY) + 1 :]
    return parts.measure, parts.base


def key_parts(key: str) -> KeyParts:
    """``key`` taken apart; ValueError for a key capgap does not know."""
    parts = _key_parts(key)
    if parts is None:
        raise ValueError(f"unknown observation key {key!r}")
    return parts


def _key_parts(key: str) -> KeyParts | None:
    if key in GAP_MEASURES:
        return KeyParts("gap", window=GAP_MEASURES[key])
    if key.startswith(LEAD_PREFIX):
        window, _, basis = key[len(LEAD_PREFIX) :].partition(":")
        if window not in WINDOWS or basis not in ("", TOTAL_RETURN):
            return None
        return KeyParts("leadtr" if basis else "lead", window=window)
    if key.startswith(ALL_PREFIX):
        return _combined_parts(key)
    head, _, rest = key.partition(":")
    if head == RATIO_KEY:
        base = RATIO_KEY
        first, _, after = rest.partition(":")
        small, slash, large = first.partition("/")
        if (
            slash
            and small in SYMBOLS
            and large in SYMBOLS
            and small != large
            and (small, large) != (SMALL, LARGE)
        ):
            base, rest = f"{RATIO_KEY}:{first}", after
        if not rest:
            return KeyParts("ratio", base)
        if rest in ("z", "mean"):
            return KeyParts(rest, base)
        return _average_parts(base, rest)
    if head not in SYMBOLS:
        return None
    if rest in ("", "move", "drawdown"):
        return KeyParts(rest or "price", head)
    measure, _, window = rest.partition(":")
    if measure == "move":
        return KeyParts("window", head, window=window) if window in WINDOWS else None
    return _average_parts(head, rest)


def _average_parts(base: str, text: str) -> KeyParts | None:
    names = text.split("/")
    matches = [_AVERAGE.fullmatch(name) for name in names]
    if len(names) > 2 or not all(matches):
        return None
    sessions = tuple(int(m[1]) for m in matches if m)
    if not all(AVERAGE_SESSIONS[0] <= n <= AVERAGE_SESSIONS[1] for n in sessions):
        return None
    if len(sessions) == 2 and sessions[0] == sessions[1]:
        return None
    return KeyParts("average" if len(sessions) == 1 else "averages", base, sessions=sessions)


def _combined_parts(key: str) -> KeyParts | None:
    clauses: list[Clause] = []
    for text in key[len(ALL_PREFIX) :].split("&"):
        match = _CLAUSE.fullmatch(text)
        if match is None:
            return None
        inner = _key_parts(match["key"])
        if inner is None or inner.measure in ("all", "gap"):
            return None  # no nesting; a gap reading has no value on most closes to combine with
        try:
            level = float(match["level"])
        except ValueError:
            return None
        if not math.isfinite(level):
            return None
        clauses.append(Clause(match["key"], match["op"] == ">", level))
    if not 2 <= len(clauses) <= MAX_CLAUSES:
        return None
    return KeyParts("all", clauses=tuple(clauses))


def combined_key(clauses: Iterable[Clause]) -> str:
    """The key of the condition that every one of ``clauses`` holds."""
    return ALL_PREFIX + "&".join(clause.text for clause in clauses)


def ratio_key(small: str, large: str) -> str:
    """The key of the price ratio ``small`` / ``large`` (``"RATIO"`` for ^RUT / ^GSPC)."""
    return RATIO_KEY if (small, large) == (SMALL, LARGE) else f"{RATIO_KEY}:{small}/{large}"


def clause_keys(keys: Iterable[str]) -> set[str]:
    """The keys the combined keys among ``keys`` are made of."""
    inner: set[str] = set()
    for key in keys:
        if key.startswith(ALL_PREFIX):
            inner.update(clause.key for clause in key_parts(key).clauses)
    return inner


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
    adjusted: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every requested key on every date of ``closes`` (NaN where it is not known).

    ``gap`` (P/B) and ``pegap`` (P/E) are valuation-gap histories as fractions, like
    ``market.metrics.valuation_gap`` (0.42 for a 42% discount), indexed by snapshot date; each trading date
    takes the latest snapshot on or before it, for at most ``GAP_MAX_AGE``. A NaN snapshot (a reading its
    twins contradict) is unknown, and stops the carrying forward of the one before it. Without a history
    its column is all NaN. ``adjusted`` holds the funds' adjusted closes a total-return lead is measured on
    (none: its column is all NaN).
    """
    index = pd.DatetimeIndex(closes.index)
    columns: dict[str, pd.Series] = {}
    for key in dict.fromkeys(keys):
        columns[key] = _derived(closes, index, key, (gap, pegap, adjusted), columns)
    frame = pd.DataFrame(columns, index=index)
    return frame.astype("float64")


def _derived(
    closes: pd.DataFrame,
    index: pd.DatetimeIndex,
    key: str,
    extra: tuple[pd.Series | None, pd.Series | None, pd.DataFrame | None],
    done: dict[str, pd.Series],
) -> pd.Series:
    """One key's series on ``index``; ``done`` holds the keys computed already (a combined key's clauses)."""
    if key in done:
        return done[key]
    gap, pegap, adjusted = extra
    parts = key_parts(key)
    measure, base = parts.measure, parts.base
    if measure == "price":
        return _column(closes, base).reindex(index)
    if measure == "move":
        valid = _valid(_column(closes, base))
        return ((valid / valid.shift(1) - 1.0) * 100.0).reindex(index)
    if measure == "drawdown":
        valid = _valid(_column(closes, base))
        return ((1.0 - valid / valid.cummax()) * 100.0).reindex(index)
    if measure == "ratio" and base == RATIO_KEY:
        return _column(closes, SMALL) / _column(closes, LARGE)
    if measure == "lead":
        assert parts.window is not None
        small = _window_return(_valid(_column(closes, SMALL)), parts.window).reindex(index)
        large = _window_return(_valid(_column(closes, LARGE)), parts.window).reindex(index)
        return (small - large) * 100.0
    if measure == "leadtr":
        assert parts.window is not None
        if adjusted is None or not {TR_SMALL, TR_LARGE} <= set(adjusted.columns):
            return pd.Series(np.nan, index=index)
        small = _window_return(_valid(adjusted[TR_SMALL].astype("float64")), parts.window).reindex(index)
        large = _window_return(_valid(adjusted[TR_LARGE].astype("float64")), parts.window).reindex(index)
        return (small - large) * 100.0
    if measure == "gap":
        return _gap_on(index, gap if parts.window == "pb" else pegap) * 100.0
    if measure == "all":
        # Unknown while any condition is (as live: no value until every condition has one), else 1 or 0.
        known = np.ones(len(index), dtype=bool)
        holds = np.ones(len(index), dtype=bool)
        for clause in parts.clauses:
            values = done.setdefault(clause.key, _derived(closes, index, clause.key, extra, done)).to_numpy()
            known &= ~np.isnan(values)
            holds &= values >= clause.level if clause.above else values <= clause.level
        return pd.Series(np.where(known, holds.astype("float64"), np.nan), index=index)
    if measure == "window":
        assert parts.window is not None
        return (_window_return(_valid(_column(closes, base)), parts.window) * 100.0).reindex(index)
    return transformed(_base_series(closes, parts), parts).reindex(index)


def _base_series(closes: pd.DataFrame, parts: KeyParts) -> pd.Series:
    """The valid values a moving-average, z or mean key is taken of: a symbol's closes, or a ratio on the
    dates both its symbols have a valid close."""
    if parts.base in SYMBOLS:
        return _valid(_column(closes, parts.base))
    small, large = parts.pair
    small_values, large_values = _valid(_column(closes, small)), _valid(_column(closes, large))
    shared = small_values.index.intersection(large_values.index)
    return small_values.loc[shared] / large_values.loc[shared]


def transformed(values: pd.Series, parts: KeyParts) -> pd.Series:
    """An average, averages, z, mean or plain ratio key's values on each date of ``values`` (valid values of
    its base, ascending)."""
    if parts.measure == "average":
        return values / moving_average(values, parts.sessions[0])
    if parts.measure == "averages":
        fast, slow = (moving_average(values, n) for n in parts.sessions)
        return fast / slow
    if parts.measure == "z":
        return ratio_history(values).z
    if parts.measure == "mean":
        return values / ratio_history(values).mean
    if parts.measure == "ratio":
        return values
    raise ValueError(f"{parts.measure} is not a measure of a base series")


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
    wanted = None if keys is None else set(keys) | clause_keys(keys)
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

    combined: list[tuple[str, KeyParts]] = []
    for key in sorted(wanted or ()):
        parts = _key_parts(key)
        if parts is None or key in out or parts.measure in _QUOTED_MEASURES:
            continue
        if parts.measure == "all":
            combined.append((key, parts))
            continue
        found = _live_value(parts, live, before, session)
        if found is not None:
            put(key, *found)
    for key, parts in combined:
        seen = [out.get(clause.key) for clause in parts.clauses]
        if any(o is None for o in seen):
            continue  # a clause with no value now: the combination is unknown, not false
        known = [o for o in seen if o is not None]
        value = 1.0 if all(c.holds(o.value) for c, o in zip(parts.clauses, known, strict=True)) else 0.0
        put(key, value, min(o.time for o in known), any(o.stale for o in known))
    return out


# The measures the quote loop above gives (or, for the gap and the total-return lead, that have no live
# value: a fund's adjusted close comes with its close).
_QUOTED_MEASURES = ("price", "move", "drawdown", "lead", "leadtr", "gap")


def _live_value(
    parts: KeyParts,
    live: Mapping[str, tuple[float, datetime, bool]],
    before: pd.DataFrame,
    session: date,
) -> tuple[float, datetime, bool] | None:
    """A moving-average, z, mean, pair-ratio or window-move key's value from live prices: the base's live
    value taken as ``session``'s close after the closes before it, so a live value equals the close value
    the same price would give. None when a quote or the history it needs is missing."""
    if parts.measure == "ratio" and parts.base == RATIO_KEY:
        return None  # the quote loop's
    symbols = (parts.base,) if parts.base in SYMBOLS else parts.pair
    if any(symbol not in live or symbol not in before.columns for symbol in symbols):
        return None
    quoted = [live[symbol] for symbol in symbols]
    moment, stale = min(q[1] for q in quoted), any(q[2] for q in quoted)
    price = quoted[0][0] if len(quoted) == 1 else quoted[0][0] / quoted[1][0]
    if parts.measure == "window":
        assert parts.window is not None and parts.base is not None
        base = _base_close(_valid(before[parts.base].astype("float64")), session, parts.window)
        return None if base is None else ((price / base - 1.0) * 100.0, moment, stale)
    value = _last_value(_base_series(before, parts).to_numpy(), price, parts)
    return (value, moment, stale) if value is not None and math.isfinite(value) else None


def _last_value(past: np.ndarray, price: float, parts: KeyParts) -> float | None:
    """What ``transformed`` gives on the date of ``price`` after the values ``past``: the same formulas
    (``market.metrics``), on the closes they need rather than the whole history (a refresh runs this on
    every poll; the tests check both agree)."""
    if parts.measure == "ratio":
        return price
    if parts.measure in ("average", "averages"):
        longest = max(parts.sessions)
        values = np.append(past[len(past) - (longest - 1) :] if longest > 1 else past[:0], price)
        if len(values) < longest:
            return None
        averages = [float(values[-n:].mean()) for n in parts.sessions]
        return price / averages[0] if parts.measure == "average" else averages[0] / averages[1]
    values = np.append(past, price)
    if len(values) < MIN_Z_DAYS:
        return None
    mean = float(values.mean())
    if parts.measure == "mean":
        return price / mean
    std = float(values.std(ddof=1))
    return (price - mean) / std if std > 0 else None


def _base_close(past: pd.Series, session: date, window: str) -> float | None:
    """The base close for ``window`` counted back from ``session``, from the closes before it."""
    if past.empty:
        return None
    start = window_start(pd.DatetimeIndex([pd.Timestamp(session)]), window)[0]
    position = int(pd.DatetimeIndex(past.index).as_unit("ns").searchsorted(start, side="right")) - 1
    return float(past.iloc[position]) if position >= 0 else None
