"""The valuation gap from two independent fund pairs that check each other.

The gap is 1 − (small-cap multiple ÷ large-cap multiple) of the funds' holdings (``market.metrics.
valuation_gap``), on price-to-book (``pb``) or price-to-earnings (``pe``). It is read from two pairs whose
sides share a methodology: IWM/IVV (both iShares) and VTWO/VOO (both Vanguard). IWM and VTWO hold the same
index (the Russell 2000), as IVV and VOO do (the S&P 500), so each fund has a twin whose multiple should
agree with its own. A reading is contradicted, and its gap unknown, when

- twins disagree by more than ``TWIN_TOLERANCE`` (relative), or
- a fund whose twin is not known that day moved more than ``MAX_MULTIPLE_MOVE`` since its previous
  snapshot (within ``JUMP_WINDOW_DAYS``): the price guard's limit (``market.plausibility``) applied to
  fund facts. (Where the twin is known, it is the check: twins that agree confirm each other's move.)

With only one pair known the reading stands, marked unchecked. Nothing here is guessed: a date is a date
capgap (or ``funds.csv``) holds a snapshot for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from market.metrics import MAX_SNAPSHOT_AGE_DAYS, GapPoint, valuation_gap
from market.plausibility import MAX_DAILY_MOVE


@dataclass(frozen=True)
class Pair:
    small: str
    large: str
    family: str


PAIRS: Final = (Pair("IWM", "IVV", "iShares"), Pair("VTWO", "VOO", "Vanguard"))
# Which fund checks which: the same index, another family.
TWINS: Final = {"IWM": "VTWO", "VTWO": "IWM", "IVV": "VOO", "VOO": "IVV"}
MEASURES: Final = {"pb": ("price_to_book", "P/B"), "pe": ("price_to_earnings", "P/E")}

# Two funds of one index are one portfolio: their holdings' multiples differ by sampling and dates, not
# by more than a tenth.
TWIN_TOLERANCE: Final = 0.10
# A holdings multiple moves with the prices of the holdings (and, rarely, with a book or earnings
# revision): beyond the price guard's daily limit between snapshots this close together it is a data error
# unless the twin saw the same.
MAX_MULTIPLE_MOVE: Final = MAX_DAILY_MOVE
JUMP_WINDOW_DAYS: Final = 10
_MAX_STEP: Final = math.log1p(MAX_MULTIPLE_MOVE)


@dataclass(frozen=True)
class PairGap:
    pair: Pair
    gap: float
    small: float  # the multiples the gap is made of
    large: float


@dataclass(frozen=True)
class GapReading:
    """The gap on one snapshot date. ``gap`` is None when the reading is contradicted (``problem`` says
    why); otherwise it is the mean of the pairs known that day. ``checked`` is False when no twin could
    check it (only one pair known)."""

    as_of: date
    measure: str
    pairs: tuple[PairGap, ...]
    gap: float | None
    problem: str | None
    checked: bool
    # Every fund's multiple that day, its pair complete or not: what the twin checks compared.
    multiples: tuple[tuple[str, float], ...] = ()
    # The funds whose multiple is carried from an earlier snapshot (at most MAX_SNAPSHOT_AGE_DAYS old),
    # with that snapshot's date: a reading says so rather than pass an old value off as the day's.
    carried: tuple[tuple[str, date], ...] = ()


def _snapshots(funds: pd.DataFrame, column: str) -> dict[str, pd.Series]:
    """Each fund's valid multiples by snapshot date (the last row of a day wins)."""
    if funds.empty or column not in funds.columns:
        return {}
    symbols = [s for pair in PAIRS for s in (pair.small, pair.large)]
    rows = funds.loc[funds["symbol"].isin(symbols), ["symbol", "as_of", column]].copy()
    rows["as_of"] = pd.to_datetime(rows["as_of"]).dt.normalize()
    rows[column] = pd.to_numeric(rows[column], errors="coerce").astype(float)
    values = rows[column].to_numpy()
    rows = rows[np.isfinite(values) & (values > 0)].sort_values("as_of", kind="stable")
    return {
        str(symbol): group.groupby("as_of")[column].last()
        for symbol, group in rows.groupby("symbol", sort=False)
    }


def _step(series: pd.Series, when: pd.Timestamp) -> float | None:
    """The log change of ``series`` into its snapshot on ``when`` from the one before, if that one is at
    most JUMP_WINDOW_DAYS older; None when there is no snapshot on ``when`` or none close enough before."""
    if when not in series.index:
        return None
    position = series.index.get_loc(when)
    if not isinstance(position, int) or position == 0:
        return None
    before = series.index[position - 1]
    if (when - before).days > JUMP_WINDOW_DAYS:
        return None
    return math.log(float(series.iloc[position]) / float(series.iloc[position - 1]))


def readings(funds: pd.DataFrame, measure: str = "pb") -> list[GapReading]:
    """The gap on every date with a snapshot of any of the four funds, oldest first (dates where no pair
    is known are left out). ``funds`` is ``MarketSnapshot.funds``."""
    column, label = MEASURES[measure]
    by_symbol = _snapshots(funds, column)
    if not by_symbol:
        return []
    dates = sorted({day for series in by_symbol.values() for day in series.index})
    result: list[GapReading] = []
    for when in dates:
        known: dict[str, float] = {}
        carried: dict[str, date] = {}
        for symbol, series in by_symbol.items():
            upto = series[series.index <= when]
            if len(upto) and (when - upto.index[-1]).days <= MAX_SNAPSHOT_AGE_DAYS:
                known[symbol] = float(upto.iloc[-1])
                if upto.index[-1] < when:
                    carried[symbol] = upto.index[-1].date()
        pairs = []
        for pair in PAIRS:
            gap = valuation_gap(known.get(pair.small), known.get(pair.large))
            if gap is not None:
                pairs.append(PairGap(pair, gap, known[pair.small], known[pair.large]))
        if not pairs:
            continue
        problems = []
        for first, second in (("IWM", "VTWO"), ("IVV", "VOO")):
            if first in known and second in known:
                apart = abs(known[first] / known[second] - 1.0)
                if apart > TWIN_TOLERANCE:
                    problems.append(
                        f"{first}'s {label} {known[first]:.2f} and {second}'s {known[second]:.2f} disagree "
                        f"by {apart * 100:.0f}% (more than {TWIN_TOLERANCE * 100:.0f}%)"
                    )
        for symbol, series in by_symbol.items():
            if TWINS[symbol] in known:
                continue  # the twin check above judged it
            step = _step(series, when)
            if step is not None and abs(step) > _MAX_STEP:
                problems.append(
                    f"{symbol}'s {label} moved {math.expm1(step) * 100:+.0f}% since its previous snapshot, "
                    f"with no {TWINS[symbol]} reading to confirm it"
                )
        checked = any(a in known and b in known for a, b in (("IWM", "VTWO"), ("IVV", "VOO")))
        problem = "; ".join(problems) or None
        gap = None if problem else sum(p.gap for p in pairs) / len(pairs)
        result.append(
            GapReading(
                when.date(),
                measure,
                tuple(pairs),
                gap,
                problem,
                checked,
                tuple(known.items()),
                tuple(carried.items()),
            )
        )
    return result


def trusted(history: Sequence[GapReading]) -> list[GapPoint]:
    """The readings with a gap (not contradicted), as points ``market.metrics.gap_change`` takes; a point's
    multiples are those of the first pair known that day."""
    return [
        GapPoint(reading.as_of, reading.gap, reading.pairs[0].small, reading.pairs[0].large)
        for reading in history
        if reading.gap is not None
    ]


def trusted_series(history: Sequence[GapReading]) -> pd.Series:
    """The trusted gaps (fractions) indexed by snapshot date: what gap alerts are judged on."""
    points = trusted(history)
    return pd.Series(
        [p.gap for p in points],
        index=pd.DatetimeIndex([pd.Timestamp(p.as_of) for p in points]),
        dtype="float64",
    )
