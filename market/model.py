"""What a market source hands back, in capgap's own units.

``closes`` frames are the shared currency of ``market/`` and ``alerts/``: a ``DatetimeIndex`` of trading
dates (tz-naive, midnight, ascending, unique) and one float column per Yahoo symbol holding the official
daily close (split-adjusted, not dividend-adjusted). A missing value is NaN, never 0.

``adjusted`` frames have the same shape for the funds only: Yahoo's "Adj Close", split- and
dividend-adjusted. Its level depends on the day it was fetched, so only its returns mean anything (a total
return); for an index Yahoo's Adj Close is its close, so indices have no column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    import pandas as pd


class MarketUnavailable(Exception):
    """The source could not answer.

    ``str(exc)`` (also ``reason``) is one short sentence a person understands ("Yahoo Finance could not be
    reached"): it is what a chat's footer shows. ``detail`` is the technical account (which symbols, which
    status, what yfinance said) for the log and /stats; it defaults to the reason.
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


class MarketRateLimited(MarketUnavailable):
    """The source asked us to slow down (Yahoo answered 429)."""


@dataclass(frozen=True)
class Quote:
    """The latest price of one symbol: live during the session, else the last close."""

    symbol: str
    price: float
    time: datetime  # timezone-aware (UTC) time of the price
    previous_close: float | None = None


# An expense ratio (a fraction) at or above this is a unit mix-up, not a fee: index ETFs charge well under
# 1% a year. 5% (not 10%) because a percent read as a fraction must fail it: SPY's 0.0945 (percent) would
# pass as a 9.45% fee under 10%.
EXPENSE_RATIO_CEILING: Final = 0.05


@dataclass(frozen=True)
class FundFacts:
    """One dated snapshot of an ETF's facts. Fields the source did not give are None, never 0."""

    symbol: str
    as_of: date
    expense_ratio: float | None  # a fraction: 0.0019 means 0.19% a year
    total_assets: float | None  # USD
    price_to_book: float | None  # price / book of the fund's holdings
    source: str
    price_to_earnings: float | None = None  # price / earnings of the fund's holdings


@dataclass(frozen=True)
class MarketData:
    """One refresh's worth of prices from a source."""

    closes: pd.DataFrame
    quotes: dict[str, Quote]
    source: str  # e.g. "Yahoo Finance", "CSV (shared/data)"
    fetched_at: datetime  # timezone-aware
    adjusted: pd.DataFrame | None = None  # the funds' adjusted closes (see the module's docstring)


class MarketSource(Protocol):
    """Where numbers come from. One call fetches every symbol (one batched request upstream)."""

    name: str

    def fetch(self, symbols: Sequence[str], since: date | None = None) -> MarketData:
        """Daily closes for ``symbols`` from ``since`` (None: all history) and the latest quotes."""
        ...

    def fetch_funds(self, symbols: Sequence[str]) -> list[FundFacts]:
        """Fund facts for the ETFs among ``symbols`` (possibly several dated rows per symbol)."""
        ...
