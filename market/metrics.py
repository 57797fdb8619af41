"""What the closes mean: returns by period, highs, small vs large, target levels, fund costs, the gap.

Every function here is pure: frames and numbers in, numbers and small dataclasses out. No I/O, no clock,
no Telegram. The conventions are those of ``market.model``:

- A close series is a ``pd.Series`` of floats on a tz-naive, ascending, unique ``DatetimeIndex`` of trading
  dates. NaN means missing and is dropped before use; so are infinities.
- Returns and distances are fractions (0.05 = +5%); only ``relative_performance`` answers in percentage
  points, because that is how a reader compares two returns.
- ``end`` (a ``date``, ``datetime`` or ``pd.Timestamp``; None = the last row) evaluates "as of" a day: only
  closes dated on or before it count.

The period convention: an N-period return compares the latest close with the last close on or before the
same calendar date N periods earlier. 1D is one calendar day, 1W seven days, 1M/3M/6M whole calendar
months with the day clipped to the month's end, 1Y/3Y/5Y/10Y/20Y whole years (Feb 29 becomes Feb 28). YTD
compares with the last close of the previous year, and a date with the last close on or before it. MAX
compares with the first close of the history (for two series, ``relative_performance`` takes the first
date both have). When the history starts after that target date there is no return: a later base would
silently shorten the period.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from market.model import EXPENSE_RATIO_CEILING

# Every period key a user may give, in the order a list of them reads best.
ACCEPTED_PERIODS: tuple[str, ...] = (
    "1d",
    "1w",
    "1m",
    "3m",
    "6m",
    "ytd",
    "1y",
    "3y",
    "5y",
    "10y",
    "20y",
    "max",
)
# Spans users may ask for beyond the standard table.
EXTRA_PERIODS: tuple[str, ...] = ("3m", "6m")
# The standard table: every accepted period but the extra spans, in the same order.
PERIODS: tuple[str, ...] = tuple(p for p in ACCEPTED_PERIODS if p not in EXTRA_PERIODS)
WHOLE_HISTORY = "max"

Period = str | date

_SPAN = re.compile(r"(\d+)([dwmy])")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# An ETF/index price ratio older than this many index trading days no longer translates a level into a
# fund price honestly (dividends and tracking drift move it), so the ETF price is left out instead.
MAX_RATIO_AGE_DAYS = 10

# A fund's price-to-book snapshot pairs with the other fund's for at most this many days.
MAX_SNAPSHOT_AGE_DAYS = 10


# --- periods -------------------------------------------------------------------------------------------


def parse_period(text: str) -> str | date | None:
    """The period a user means: a canonical key from ``ACCEPTED_PERIODS``, a date for "YYYY-MM-DD"
    (meaning "since that date"), or None when the text is not understood. Case and surrounding blanks
    do not matter."""
    key = text.strip().lower()
    if key in ACCEPTED_PERIODS:
        return key
    if _ISO_DATE.fullmatch(key):
        try:
            return date.fromisoformat(key)
        except ValueError:
            return None
    return None


def base_date(index: pd.DatetimeIndex, end: pd.Timestamp, period: Period) -> pd.Timestamp | None:
    """The date of the base close for ``period`` as of ``end``, per the module's period convention.

    The period is counted back from the latest date in ``index`` on or before ``end`` (the date of the
    latest close), so "1D as of a Saturday" compares Friday with Thursday; "max" is the first date. None
    when ``index`` has no date by then (or, for "max", only that one), when the history starts after the
    target date, or when a "since" date lies after the latest close.
    """
    dates = index[index <= _timestamp(end)]
    if len(dates) == 0:
        return None
    if not isinstance(period, date) and parse_period(period) == WHOLE_HISTORY:
        return dates[0] if len(dates) > 1 else None  # one close alone has nothing to compare with
    latest = dates[-1]
    target = pd.Timestamp(_target_date(latest.date(), period))
    if target > latest:
        return None
    return _last_on_or_before(dates, target)


def _target_date(latest: date, period: Period) -> date:
    if isinstance(period, date):
        return _timestamp(period).date()
    key = parse_period(period)
    if key is None:
        raise ValueError(f"unknown period {period!r}: use one of {', '.join(ACCEPTED_PERIODS)} or YYYY-MM-DD")
    if isinstance(key, date):
        return key
    if key == "ytd":
        return date(latest.year - 1, 12, 31)
    span = _SPAN.fullmatch(key)
    assert span is not None, key  # every canonical key but "ytd" and "max" (see base_date) is a span
    count, unit = int(span[1]), span[2]
    if unit == "d":
        return latest - timedelta(days=count)
    if unit == "w":
        return latest - timedelta(weeks=count)
    if unit == "m":
        return _months_earlier(latest, count)
    return _months_earlier(latest, 12 * count)


def _months_earlier(day: date, months: int) -> date:
    """The same calendar day ``months`` months earlier, clipped to the month's end (Mar 31 → Feb 28/29,
    and so Feb 29 → Feb 28 a year earlier)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 - months, 12)
    month = month0 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _timestamp(value: date) -> pd.Timestamp:
    """A tz-naive midnight Timestamp, so a time of day or a time zone cannot exclude that day's close."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def _last_on_or_before(index: pd.DatetimeIndex, when: pd.Timestamp) -> pd.Timestamp | None:
    position = int(index.searchsorted(when, side="right")) - 1
    return index[position] if position >= 0 else None


def _valid(closes: pd.Series, end: date | None) -> pd.Series:
    """The usable closes: finite values dated on or before ``end``."""
    values = pd.to_numeric(closes, errors="coerce").astype(float)
    values = values[np.isfinite(values.to_numpy())]
    if end is not None:
        values = values[values.index <= _timestamp(end)]
    return values


# --- returns -------------------------------------------------------------------------------------------


def period_return(closes: pd.Series, period: Period, end: date | None = None) -> float | None:
    """The return over ``period`` as of ``end`` (a fraction), or None when the history is too short."""
    values = _valid(closes, end)
    if values.empty:
        return None
    base = base_date(pd.DatetimeIndex(values.index), values.index[-1], period)
    if base is None:
        return None
    base_close = float(values.loc[base])
    if base_close <= 0:
        return None
    return float(values.iloc[-1]) / base_close - 1.0


def returns_table(
    closes: pd.Series, periods: Iterable[str] = PERIODS, end: date | None = None
) -> dict[str, float | None]:
    """``period_return`` for each of ``periods``, keyed by the period as given, in the given order."""
    return {period: period_return(closes, period, end) for period in periods}


@dataclass(frozen=True)
class HighMark:
    """The all-time closing high within the history, and how far the latest close sits below it."""

    high: float
    high_date: date
    last: float
    last_date: date
    below: float  # fraction below the high, >= 0 (0.1 = 10% below); note ``drawdown`` is <= 0


def high_mark(closes: pd.Series, end: date | None = None) -> HighMark | None:
    """The highest close on or before ``end`` (the first day it was reached) and the latest close."""
    values = _valid(closes, end)
    if values.empty:
        return None
    position = int(np.argmax(values.to_numpy()))
    high = float(values.iloc[position])
    last = float(values.iloc[-1])
    return HighMark(
        high=high,
        high_date=values.index[position].date(),
        last=last,
        last_date=values.index[-1].date(),
        below=max(0.0, 1.0 - last / high) if high > 0 else 0.0,
    )


def relative_performance(
    small: pd.Series, large: pd.Series, period: Period, end: date | None = None
) -> float | None:
    """Small-cap return minus large-cap return over ``period``, in percentage points (+74% vs +174% is
    -100.0).

    Both returns are measured as of the latest date on which both series have a close, so a series that
    is a day ahead of the other cannot tilt the comparison; each then takes its own base close per the
    period convention. "max" starts both at the first date both have a close: two histories of different
    lengths are compared over the same span.
    """
    small_values, large_values = _valid(small, end), _valid(large, end)
    shared = small_values.index.intersection(large_values.index)
    if len(shared) == 0:
        return None
    as_of = shared.max()
    if not isinstance(period, date) and parse_period(period) == WHOLE_HISTORY:
        period = shared.min().date()
    small_return = period_return(small_values, period, as_of)
    large_return = period_return(large_values, period, as_of)
    if small_return is None or large_return is None:
        return None
    return (small_return - large_return) * 100.0


def rebased(frame: pd.DataFrame, start: date) -> pd.DataFrame:
    """The rows from ``start`` on, each column divided by its first valid value on or after ``start``
    and multiplied by 100. A column with no valid value there stays NaN."""
    window = frame.loc[frame.index >= _timestamp(start)].astype(float)
    if window.empty:
        return window
    first = window.bfill().iloc[0]
    first = first.where(first > 0)
    return window.div(first, axis="columns") * 100.0


def drawdown(closes: pd.Series) -> pd.Series:
    """How far each close sits below the highest close so far, as a fraction <= 0 (-0.25 = 25% below;
    0 on a new high). Missing closes are dropped, so the result is on the valid dates only."""
    values = _valid(closes, None)
    return values / values.cummax() - 1.0


# --- moving averages -----------------------------------------------------------------------------------

# The simple moving averages capgap follows, in sessions (trading days with a close).
MOVING_AVERAGES: tuple[int, ...] = (50, 200)


def moving_average(closes: pd.Series, sessions: int) -> pd.Series:
    """The simple average of the last ``sessions`` valid closes, on each valid close's date (NaN until
    ``sessions`` closes exist). Missing, non-finite and non-positive closes are dropped first, so a gap in
    the data shifts the window back rather than averaging a hole: "200-day" means 200 sessions, as charting
    platforms draw it."""
    if sessions < 1:
        raise ValueError(f"a moving average needs at least 1 session, got {sessions}")
    values = _valid(closes, None)
    values = values[values.to_numpy() > 0]
    return values.rolling(sessions, min_periods=sessions).mean()


# --- small vs large ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatioStanding:
    """Where today's small/large price ratio stands within a window of its own history."""

    ratio: float
    percentile: float  # 0–100: share of days in the window with a ratio <= today's
    since: date  # the first day of the window
    low: float
    low_date: date
    high: float
    high_date: date


def ratio_standing(
    small: pd.Series, large: pd.Series, years: int | None = None, end: date | None = None
) -> RatioStanding | None:
    """Today's ratio of small to large closes (on dates both have) against the last ``years`` years of it,
    or all shared history when ``years`` is None.

    The window starts at the last shared date on or before the same calendar date ``years`` years earlier,
    like a ``years``-long return. None when there is no shared close, or the shared history is shorter
    than the window.
    """
    if years is not None and years < 1:
        raise ValueError(f"years must be at least 1, got {years}")
    small_values, large_values = _valid(small, end), _valid(large, end)
    shared = small_values.index.intersection(large_values.index).sort_values()
    ratio = small_values.loc[shared] / large_values.loc[shared]
    ratio = ratio[np.isfinite(ratio.to_numpy()) & (ratio.to_numpy() > 0)]
    if ratio.empty:
        return None
    if years is not None:
        latest = ratio.index[-1]
        start = pd.Timestamp(_months_earlier(latest.date(), 12 * years))
        if ratio.index[0] > start:
            return None
        first = _last_on_or_before(pd.DatetimeIndex(ratio.index), start)
        ratio = ratio[ratio.index >= first]
    today = float(ratio.iloc[-1])
    values = ratio.to_numpy()
    low_at, high_at = int(np.argmin(values)), int(np.argmax(values))
    return RatioStanding(
        ratio=today,
        percentile=float(np.count_nonzero(values <= today)) / len(values) * 100.0,
        since=ratio.index[0].date(),
        low=float(values[low_at]),
        low_date=ratio.index[low_at].date(),
        high=float(values[high_at]),
        high_date=ratio.index[high_at].date(),
    )


@dataclass(frozen=True)
class RatioHistory:
    """A ratio against its own past: its mean and standard deviation over every day up to each date (no
    look-ahead: a date's figures use only that date and earlier), and the z-score (ratio − mean) ÷ std."""

    mean: pd.Series
    std: pd.Series  # sample standard deviation (ddof 1)
    z: pd.Series


# A z-score over fewer days than this says little: the mean and spread are not settled yet.
MIN_Z_DAYS = 250


def ratio_history(ratio: pd.Series, years: int | None = None) -> RatioHistory:
    """``ratio``'s mean, spread and z-score on each of its valid dates, over all earlier history (``years``
    None: since the series starts — 1987 for ^RUT/^GSPC) or over the last ``years`` years (the days
    within 365¼ × ``years`` calendar days before each date, that date included). NaN until ``MIN_Z_DAYS``
    values are in the window."""
    values = _valid(ratio, None)
    values = values[values.to_numpy() > 0]
    if years is None:
        expanding = values.expanding(min_periods=MIN_Z_DAYS)
        mean, std = expanding.mean(), expanding.std(ddof=1)
    else:
        if years < 1:
            raise ValueError(f"years must be at least 1, got {years}")
        rolling = values.rolling(f"{365 * years + years // 4}D", min_periods=MIN_Z_DAYS)
        mean, std = rolling.mean(), rolling.std(ddof=1)
    z = (values - mean) / std.where(std > 0)
    return RatioHistory(mean=mean, std=std, z=z)


# --- target levels -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetDistance:
    """How far an index must move to reach ``level``, and what that level means as an ETF price."""

    level: float
    last: float  # the index's latest close
    change_needed: float  # fraction; negative when the level is below the latest close
    etf_symbol: str | None  # None (with etf_price) when no recent shared close gives a price ratio
    etf_price: float | None


def target_distance(
    level: float,
    index_closes: pd.Series,
    etf_closes: pd.Series | None = None,
    etf_symbol: str | None = None,
    end: date | None = None,
) -> TargetDistance | None:
    """The move from the index's latest close to ``level``, and the equivalent price of the ETF.

    The ETF price is ``level`` times the ETF/index close ratio on the latest date both have a close (on or
    before ``end``), provided that date is at most ``MAX_RATIO_AGE_DAYS`` index trading days before the
    index's latest close. None when the index has no close.
    """
    if not math.isfinite(level) or level <= 0:
        raise ValueError(f"a target level must be a positive number, got {level}")
    index_values = _valid(index_closes, end)
    if index_values.empty:
        return None
    last = float(index_values.iloc[-1])
    etf_price: float | None = None
    if etf_closes is not None:
        etf_values = _valid(etf_closes, end)
        shared = index_values.index.intersection(etf_values.index)
        if len(shared) > 0:
            ratio_date = shared.max()
            age = int(np.count_nonzero(index_values.index > ratio_date))
            index_close = float(index_values.loc[ratio_date])
            if age <= MAX_RATIO_AGE_DAYS and index_close > 0:
                etf_price = level * float(etf_values.loc[ratio_date]) / index_close
    return TargetDistance(
        level=float(level),
        last=last,
        change_needed=float(level) / last - 1.0,
        etf_symbol=etf_symbol if etf_price is not None else None,
        etf_price=etf_price,
    )


# --- fund costs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeCost:
    """What an expense ratio takes from ``amount`` held for some years.

    The fee is taken at the end of each year from the balance after that year's growth, so the first
    year's fee is ``amount × (1 + g) × expense ratio`` and equals ``cost`` for a one-year holding.
    """

    expense_ratio: float
    first_year_fee: float  # amount × (1 + g) × expense ratio: the fee the first year's end takes
    final_value: float
    final_value_without_fee: float
    cost: float  # final_value_without_fee - final_value


def fee_cost(amount: float, years: float, expense_ratio: float, gross_return: float = 0.07) -> FeeCost:
    """The value of ``amount`` after ``years`` (fractional years allowed) in a fund that grows at
    ``gross_return`` a year and charges ``expense_ratio`` on the grown balance at the end of each year:
    ``amount × ((1 + g) × (1 − er)) ** years``, against ``amount × (1 + g) ** years`` without the fee.
    The first year's fee is the same rule applied once, so a one-year cost and the first year's fee agree."""
    _require(amount, "amount", minimum=0.0)
    _require(years, "years", minimum=0.0)
    _require(expense_ratio, "expense ratio", minimum=0.0)
    _require(gross_return, "gross return")
    if expense_ratio >= EXPENSE_RATIO_CEILING:
        raise ValueError(
            f"expense ratio must be a fraction below {EXPENSE_RATIO_CEILING} (0.19% is 0.0019), "
            f"got {expense_ratio}"
        )
    if gross_return <= -1.0:
        raise ValueError(f"gross return must be above -1 (-100%), got {gross_return}")
    growth = 1.0 + gross_return
    final_value = amount * (growth * (1.0 - expense_ratio)) ** years
    without_fee = amount * growth**years
    return FeeCost(
        expense_ratio=float(expense_ratio),
        first_year_fee=amount * growth * expense_ratio,
        final_value=final_value,
        final_value_without_fee=without_fee,
        cost=without_fee - final_value,
    )


def _require(value: float, name: str, minimum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must not be negative, got {value}")


# --- valuation gap -------------------------------------------------------------------------------------


def valuation_gap(pb_small: float | None, pb_large: float | None) -> float | None:
    """How much cheaper small caps are than large caps on price-to-book: ``1 − pb_small / pb_large`` as a
    fraction (0.4 = small caps trade at a 40% discount; negative = at a premium). None unless both are
    finite and positive."""
    if pb_small is None or pb_large is None:
        return None
    if not (math.isfinite(pb_small) and math.isfinite(pb_large)) or pb_small <= 0 or pb_large <= 0:
        return None
    return 1.0 - pb_small / pb_large


@dataclass(frozen=True)
class GapPoint:
    as_of: date
    gap: float
    pb_small: float
    pb_large: float


def gap_window(days: int) -> int:
    """How far (in days, either way) a reading may sit from the date ``days`` before the newest and still
    stand for it: a quarter of the span, at least 2 days and at most 30 (1W: 5–9 days back, 1M: 23–37,
    3M: 69–113, 1Y: 335–395)."""
    return min(30, max(2, days // 4))


def gap_reading_near(history: Sequence[GapPoint], days: int) -> GapPoint | None:
    """The reading nearest to ``days`` before the newest, within ``gap_window(days)`` of that date (of two
    as near, the older), or None when no reading was taken near then. The newest itself never counts."""
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    if not history:
        return None
    points = sorted(history, key=lambda point: point.as_of)
    newest = points[-1]
    target = newest.as_of - timedelta(days=days)
    window = gap_window(days)
    near = [
        point
        for point in points[:-1]
        if point.as_of < newest.as_of and abs((point.as_of - target).days) <= window
    ]
    if not near:
        return None
    return min(near, key=lambda point: (abs((point.as_of - target).days), point.as_of))


def gap_change(history: Sequence[GapPoint], days: int) -> float | None:
    """The change in the gap (a fraction; +0.02 = 2 points wider) since the reading ``gap_reading_near``
    finds for ``days`` ago, or None when there is none: a change "over 1 week" is never measured against a
    snapshot months old."""
    since = gap_reading_near(history, days)
    if since is None:
        return None
    return max(history, key=lambda point: point.as_of).gap - since.gap
