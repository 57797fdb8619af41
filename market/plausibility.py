"""Data is guilty until plausible: the one check every outside value passes before it is stored or judged.

Yahoo does send ticks of 0, spikes, negative and missing values (yfinance issues 2422, 2480, 2329, 2393,
2619, 1952), and a hand-edited CSV can hold anything. ``screen`` takes a closes frame (``market.model``)
from any source and splits it into the values capgap may keep and the ones it holds aside:

- **rejected at once**: a value that is not a finite, positive number;
- **suspect**: a close more than ``MAX_DAILY_MOVE`` (25%) above or below the previous accepted close of the
  same symbol. No instrument capgap follows has ever moved that far in a day: in ``shared/data`` the largest
  are ^GSPC −20.47% (19 Oct 1987) and +16.61% (15 Mar 1933), ^RUT −14.27% and +9.39% (16 and 24 Mar 2020),
  the ETFs between −13.5% and +14.5%. So a move past it is far likelier a bad tick than a market.

A suspect value is judged by a second reading, never by itself:

1. the same day's move of a peer, an instrument that stands for the same index (^RUT with IWM and VTWO,
   ^GSPC with SPY, VOO and IVV, ^SP600 with IJR, ^MID with IJH and MDY): a peer that moved the same way by at least half as much (in log terms) confirms it;
   peers that have a reading that day and did not follow refute it;
2. with no peer reading that day, the next close: one that holds the new level (nearer the suspect value
   than the old one, and itself a plausible step from it) confirms it, one that returns refutes it;
3. with neither yet, it stays *unconfirmed*: not stored, not judged, asked for again on the next refresh.

A refuted value is *rejected*. Held values never reach the cache, so no answer shows one as a close and no
rule fires on one; the next plausible close is judged against the last accepted one, as if the bad day were
missing. ``screen`` is pure: the caller logs, counts and records what it holds (``MarketService``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Final, Literal

import numpy as np
import pandas as pd

from market.calendar import NEW_YORK
from market.instruments import ALL, by_symbol
from market.model import EXPENSE_RATIO_CEILING, FundFacts, Quote

MAX_DAILY_MOVE: Final = 0.25
# In log terms, so +25% and the -20% that undoes it are the same distance.
_MAX_STEP: Final = math.log1p(MAX_DAILY_MOVE)
# A peer confirms a suspect move when it went the same way by at least this share of it (log terms).
PEER_AGREEMENT: Final = 0.5

# A fund's price-to-book outside this range is a data error, not a valuation.
PRICE_TO_BOOK_RANGE: Final = (0.2, 50.0)
# Likewise for price-to-earnings: a broad fund's holdings earn something, and no index trades at 200x.
PRICE_TO_EARNINGS_RANGE: Final = (2.0, 200.0)

Status = Literal["unconfirmed", "rejected"]


@dataclass(frozen=True)
class HeldValue:
    """A value kept out of the cache, and why."""

    symbol: str
    day: date
    value: float  # as the source sent it (may be NaN or infinite)
    reference: float | None  # the accepted close it was compared with
    status: Status
    reason: str  # one short sentence, e.g. "+52,269,269,071% in a day; IWM moved +0.55% that day"
    kind: Literal["close", "quote"] = "close"

    @property
    def move(self) -> float | None:
        """The move from ``reference`` as a fraction, when both are usable numbers."""
        if self.reference is None or not math.isfinite(self.value) or self.reference <= 0:
            return None
        return self.value / self.reference - 1.0


@dataclass(frozen=True)
class Screened:
    closes: pd.DataFrame  # the input with every held value set to NaN
    held: tuple[HeldValue, ...]


def peers(symbol: str) -> tuple[str, ...]:
    """The instruments whose same-day move can confirm ``symbol``'s: the others that stand for the same
    index (an index and the funds that hold it). A small-cap index is no peer of another (the S&P 600 and
    the Russell 2000 part ways by a point on many days), nor RSP of the S&P 500."""
    try:
        family = by_symbol(symbol).family
    except KeyError:
        return ()
    return tuple(i.symbol for i in ALL if i.family == family and i.symbol != symbol)


def _usable(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values) & (values > 0)


def screen(closes: pd.DataFrame, prior: Mapping[str, float] | None = None) -> Screened:
    """Split ``closes`` into accepted values and held ones.

    ``prior`` gives each symbol's last accepted close before the frame starts (from the cache), so the
    frame's first value is judged too; without one, a symbol's first usable value is taken as it is.
    """
    prior = prior or {}
    frame = closes.astype("float64")
    # Each symbol's raw step from its previous present value: most frames have no suspect at all, and
    # those are settled here without a loop.
    suspects: dict[str, bool] = {}
    steps: dict[str, pd.Series] = {}
    for symbol in frame.columns:
        present = frame[symbol].dropna()
        values = present.to_numpy()
        usable = _usable(values)
        with np.errstate(divide="ignore", invalid="ignore"):
            previous = np.concatenate(([prior.get(symbol, np.nan)], values[:-1]))
            step = np.log(values / previous)
        steps[symbol] = pd.Series(step, index=present.index)
        suspects[symbol] = bool((~usable).any() or (np.abs(step[np.isfinite(step)]) > _MAX_STEP).any())
    if not any(suspects.values()):
        return Screened(frame, ())

    # A peer's own step counts even when it is past the threshold too: two instruments moving together
    # are the second reading that confirms a real crash.
    plain = steps
    held: list[HeldValue] = []
    accepted = frame.copy()
    for symbol in frame.columns:
        if not suspects[symbol]:
            continue
        for value in _walk(symbol, frame[symbol].dropna(), prior.get(symbol), plain):
            held.append(value)
            accepted.at[pd.Timestamp(value.day), symbol] = np.nan
    return Screened(accepted, tuple(held))


def _walk(
    symbol: str, present: pd.Series, reference: float | None, plain: Mapping[str, pd.Series]
) -> list[HeldValue]:
    """One symbol's values in order, each judged against the last accepted one."""
    held: list[HeldValue] = []
    days = list(present.index)
    values = present.to_numpy()
    for i, (stamp, value) in enumerate(zip(days, values, strict=True)):
        day = pd.Timestamp(stamp).date()
        if not (math.isfinite(value) and value > 0):
            held.append(HeldValue(symbol, day, float(value), reference, "rejected", "not a positive price"))
            continue
        if reference is None:
            reference = float(value)
            continue
        step = math.log(value / reference)
        if abs(step) <= _MAX_STEP:
            reference = float(value)
            continue
        moved = f"{_pct(value / reference - 1)} in a day"
        verdict, why = _by_peers(symbol, stamp, step, plain)
        if verdict is None:
            verdict, why = _by_next(values[i + 1 :], float(value), reference)
        if verdict is True:
            reference = float(value)
            continue
        status: Status = "rejected" if verdict is False else "unconfirmed"
        held.append(HeldValue(symbol, day, float(value), reference, status, f"{moved}; {why}"))
    return held


def _by_peers(
    symbol: str, stamp: pd.Timestamp, step: float, plain: Mapping[str, pd.Series]
) -> tuple[bool | None, str]:
    """Confirmed (True), refuted (False) or no peer reading that day (None), with the reason."""
    readings = []
    for peer in peers(symbol):
        series = plain.get(peer)
        if series is None or stamp not in series.index:
            continue
        peer_step = float(series.loc[stamp])
        if math.isfinite(peer_step):
            readings.append((peer, peer_step))
    if not readings:
        return None, ""
    for peer, peer_step in readings:
        if peer_step * step > 0 and abs(peer_step) >= PEER_AGREEMENT * abs(step):
            return True, f"{peer} moved {_pct(math.expm1(peer_step))}"
    peer, peer_step = readings[0]
    return False, f"{peer} moved {_pct(math.expm1(peer_step))} that day"


def _by_next(later: np.ndarray, value: float, reference: float) -> tuple[bool | None, str]:
    following = later[_usable(later)]
    if not len(following):
        return None, "waiting for a second reading"
    after = float(following[0])
    holds = abs(math.log(after / value)) <= _MAX_STEP and abs(math.log(after / value)) < abs(
        math.log(after / reference)
    )
    if holds:
        return True, "the next close held the level"
    return False, f"the next close went back to {after:,.2f}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:+,.2f}%"


def screen_quotes(
    quotes: Mapping[str, Quote],
    accepted: pd.DataFrame,
    held: tuple[HeldValue, ...],
    prior: Mapping[str, float] | None = None,
) -> tuple[dict[str, Quote], tuple[HeldValue, ...]]:
    """The quotes to keep, each with ``previous_close`` set to the last accepted close before its day.

    A quote must be a positive number, not a value ``screen`` held, and a plausible move from that close,
    or one a peer's quote of the same day confirms. ``prior`` stands in for closes before ``accepted``.
    """
    held_days = {(h.symbol, h.day) for h in held}
    refused: list[HeldValue] = []
    readings: dict[str, tuple[date, float, float | None]] = {}
    for symbol, quote in quotes.items():
        day = quote.time.astimezone(NEW_YORK).date()
        base = _last_before(accepted, symbol, day)
        if base is None and prior:
            base = prior.get(symbol)
        if (symbol, day) in held_days:
            continue
        if not (math.isfinite(quote.price) and quote.price > 0):
            refused.append(
                HeldValue(symbol, day, quote.price, base, "rejected", "not a positive price", "quote")
            )
            continue
        readings[symbol] = (day, 0.0 if base is None else math.log(quote.price / base), base)
    kept: dict[str, Quote] = {}
    for symbol, (day, step, base) in readings.items():
        if abs(step) > _MAX_STEP:
            same_day = {
                peer: pd.Series([peer_step], index=[pd.Timestamp(day)])
                for peer, (peer_day, peer_step, _) in readings.items()
                if peer_day == day and peer != symbol
            }
            verdict, why = _by_peers(symbol, pd.Timestamp(day), step, same_day)
            if verdict is not True:
                status: Status = "rejected" if verdict is False else "unconfirmed"
                reason = f"{_pct(math.expm1(step))} from the last close; {why or 'no second reading yet'}"
                refused.append(HeldValue(symbol, day, quotes[symbol].price, base, status, reason, "quote"))
                continue
        kept[symbol] = replace(quotes[symbol], previous_close=base)
    return kept, tuple(refused)


def _last_before(closes: pd.DataFrame, symbol: str, day: date) -> float | None:
    if symbol not in closes.columns:
        return None
    series = closes[symbol].dropna()
    series = series[series.index < pd.Timestamp(day)]
    return float(series.iloc[-1]) if len(series) else None


def plausible_fund(facts: FundFacts) -> tuple[FundFacts, list[str]]:
    """``facts`` with each implausible field made unknown (None), and what was dropped, for the log."""
    dropped = []
    expense_ratio, total_assets, price_to_book = facts.expense_ratio, facts.total_assets, facts.price_to_book
    if expense_ratio is not None and not (
        math.isfinite(expense_ratio) and 0 < expense_ratio < EXPENSE_RATIO_CEILING
    ):
        dropped.append(f"expense ratio {expense_ratio!r}")
        expense_ratio = None
    if total_assets is not None and not (math.isfinite(total_assets) and total_assets > 0):
        dropped.append(f"total assets {total_assets!r}")
        total_assets = None
    low, high = PRICE_TO_BOOK_RANGE
    if price_to_book is not None and not (math.isfinite(price_to_book) and low <= price_to_book <= high):
        dropped.append(f"price-to-book {price_to_book!r}")
        price_to_book = None
    price_to_earnings = facts.price_to_earnings
    low, high = PRICE_TO_EARNINGS_RANGE
    if price_to_earnings is not None and not (
        math.isfinite(price_to_earnings) and low <= price_to_earnings <= high
    ):
        dropped.append(f"price-to-earnings {price_to_earnings!r}")
        price_to_earnings = None
    if not dropped:
        return facts, []
    return replace(
        facts,
        expense_ratio=expense_ratio,
        total_assets=total_assets,
        price_to_book=price_to_book,
        price_to_earnings=price_to_earnings,
    ), dropped


# Yahoo's Adj Close is the close times the product of the dividend factors (1 − dividend ÷ price) of every
# ex-date after it, so adj ÷ close is at most 1 and never falls from one day to the next: it rises toward 1
# at each ex-date (by 1.9% at most in the history capgap follows, MDY's; no fund it follows pays a tenth
# of its price at once). The tolerance covers prices rounded to 6 decimals.
_ADJUSTED_SLACK: Final = 1e-4
MAX_DIVIDEND_STEP: Final = 0.10


def screen_adjusted(closes: pd.DataFrame, adjusted: pd.DataFrame | None) -> tuple[pd.DataFrame, int]:
    """The funds' adjusted closes that can be believed, beside the screened ``closes`` (same dates), and
    how many were dropped.

    An adjusted close counts only on a day whose close was accepted, when it is a positive number no
    higher than that close, and when its ratio to the close neither falls from the previous kept day's
    nor rises by more than ``MAX_DIVIDEND_STEP``. A dropped one is a day without a total-return reading
    (the close itself stands); nothing is fired on adjusted closes that were not kept.
    """
    if adjusted is None or adjusted.empty:
        return pd.DataFrame(index=closes.index, dtype="float64"), 0
    kept = {}
    dropped = 0
    for symbol in adjusted.columns:
        if symbol not in closes.columns:
            dropped += int(adjusted[symbol].notna().sum())
            continue
        close = closes[symbol].reindex(adjusted.index)
        values = pd.to_numeric(adjusted[symbol], errors="coerce").astype("float64")
        factor = (values / close).to_numpy()
        good = np.isfinite(factor) & (factor > 0) & (factor <= 1 + _ADJUSTED_SLACK)
        last = np.nan
        for position in np.flatnonzero(good):
            if math.isfinite(last) and not (
                last * (1 - _ADJUSTED_SLACK) <= factor[position] <= last * (1 + MAX_DIVIDEND_STEP)
            ):
                good[position] = False
                continue
            last = factor[position]
        dropped += int(np.count_nonzero(values.notna().to_numpy() & ~good))
        kept[symbol] = values.where(good)
    return pd.DataFrame(kept, index=adjusted.index, dtype="float64"), dropped
