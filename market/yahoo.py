"""Yahoo Finance through yfinance — the one module in capgap that imports yfinance.

yfinance is imported inside the methods that use it, so importing this module stays cheap for code
paths (CLI help, tests of other modules) that never talk to Yahoo.

Two facts about yfinance 1.7 shape this module:

- Its HTTP session is process-wide: every call installs the ``session=`` it is given (and
  ``download()`` without one installs a fresh default). So every call here passes our session, and a
  module lock keeps two sources from swapping sessions under each other's requests.
- ``download()`` catches each symbol's exception and only *logs* it (``yf.shared._ERRORS`` is no
  longer filled). A rate limit and a delisted symbol both come back as a missing column; the only
  public place the difference shows is the ``yfinance`` logger, so ``fetch`` listens to it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import pandas as pd

from market.model import FundFacts, MarketData, MarketRateLimited, MarketUnavailable, Quote

if TYPE_CHECKING:
    from curl_cffi.requests import Session

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Earlier than any series capgap follows (Yahoo's ^GSPC history starts on 1927-12-30).
EARLIEST_HISTORY: Final = date(1900, 1, 1)
FIRST_BACKOFF: Final = timedelta(seconds=60)
LONGEST_BACKOFF: Final = timedelta(minutes=30)
# A fund's price-to-book outside this range is a data error, not a valuation.
PRICE_TO_BOOK_RANGE: Final = (0.2, 50.0)
# An expense ratio (as a fraction) at or above this is a unit mix-up, not a fee.
EXPENSE_RATIO_CEILING: Final = 0.1

_NEW_YORK: Final = ZoneInfo("America/New_York")
_SESSION_CLOSE: Final = time(16, 0)
_YAHOO_FAILURE: Final = re.compile(r"^\s*\[(?P<symbols>[^\]]*)\]:\s*(?P<reason>.+)$", re.DOTALL)

# yfinance's session is process-wide state; serialise every call that installs ours.
_YFINANCE: Final = threading.Lock()


class YahooSource:
    """Daily closes, latest quotes and ETF facts from Yahoo Finance (one batched download per refresh).

    After Yahoo answers 429 the source backs off (60 s, doubling to 30 min, reset by a success) and
    until ``backoff_until`` raises ``MarketRateLimited`` without sending anything.
    """

    name = "Yahoo Finance"

    def __init__(
        self,
        session: Session | None = None,
        clock: Clock | None = None,
        history_start: date = EARLIEST_HISTORY,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self.history_start = history_start
        self.backoff_until: datetime | None = None
        self._next_backoff = FIRST_BACKOFF

    # -- MarketSource ----------------------------------------------------------------------------

    def fetch(self, symbols: Sequence[str], since: date | None = None) -> MarketData:
        """Daily closes of ``symbols`` from ``since`` (None: ``history_start``) plus their latest quotes.

        One ``yf.download`` call: one chart request per symbol, plus, the first time in a process (or
        cache dir), the A3 cookie, a crumb and one timezone lookup per symbol. A symbol Yahoo has
        nothing for is left out of ``closes`` and ``quotes``; if no symbol came back at all,
        ``MarketUnavailable`` says why.
        """
        wanted = list(dict.fromkeys(symbols))
        with _YFINANCE:
            self._refuse_while_backing_off()
            if not wanted:
                return MarketData(_empty_closes(), {}, self.name, self._clock())

            import yfinance as yf
            from yfinance.exceptions import YFRateLimitError

            with _yfinance_failures() as failures:
                try:
                    raw = yf.download(
                        wanted,
                        start=since or self.history_start,
                        interval="1d",
                        auto_adjust=False,  # Close stays the price close; Adj Close folds in dividends
                        actions=False,
                        repair=False,
                        keepna=False,
                        progress=False,
                        # One request at a time: Yahoo rate-limits bursts, and a refresh is not urgent.
                        threads=False,
                        group_by="column",
                        multi_level_index=True,
                        session=self._yahoo_session(),
                    )
                except YFRateLimitError:
                    raise self._back_off("prices") from None
            fetched_at = self._clock()

            closes = _closes_from_download(raw, wanted, since)
            if failures.rate_limited:
                raise self._back_off(f"prices of {', '.join(failures.symbols) or ', '.join(wanted)}")
            if closes.columns.empty:
                raise MarketUnavailable(
                    f"Yahoo Finance sent no prices for {', '.join(wanted)} ({failures.summary()})."
                )
            self._forget_backoff()
        missing = [s for s in wanted if s not in closes.columns]
        if missing:
            logger.warning("Yahoo Finance sent no prices for %s: %s", ", ".join(missing), failures.summary())
        return MarketData(closes, _latest_quotes(closes, fetched_at), self.name, fetched_at)

    def fetch_funds(self, symbols: Sequence[str]) -> list[FundFacts]:
        """Expense ratio, total assets and price-to-book of the funds among ``symbols``.

        Index symbols (``^...``) are skipped. Each fund costs four requests the first time in a day and
        three after that (quoteSummary for the fund data; quoteSummary, v7 quote and a timeseries call,
        cached by yfinance for the day, behind ``info``). A fund Yahoo fails on is logged and left out;
        a field Yahoo leaves out is None. A rate limit stops the round and starts the backoff.
        """
        funds = [s for s in dict.fromkeys(symbols) if not s.startswith("^")]
        with _YFINANCE:
            self._refuse_while_backing_off()
            if not funds:
                return []

            import yfinance as yf
            from yfinance.exceptions import YFRateLimitError

            as_of = self._clock().date()
            facts: list[FundFacts] = []
            for symbol in funds:
                try:
                    fact = self._fund_facts(yf, symbol, as_of)
                except YFRateLimitError:
                    raise self._back_off(f"fund facts of {symbol}") from None
                except Exception as exc:  # one fund's failure must not cost the others their facts
                    logger.warning("Yahoo Finance gave no fund facts for %s: %s", symbol, exc)
                    continue
                if fact is None:
                    logger.warning("Yahoo Finance knows none of %s's fund facts", symbol)
                    continue
                facts.append(fact)
            self._forget_backoff()
        return facts

    def close(self) -> None:
        """Close the HTTP session this source opened itself (an injected one belongs to the caller)."""
        if self._owns_session and self._session is not None:
            self._session.close()
            self._session = None

    # -- internals -------------------------------------------------------------------------------

    def _yahoo_session(self) -> Session:
        if self._session is None:
            from curl_cffi import requests as curl_requests

            self._session = curl_requests.Session(impersonate="chrome")
        return self._session

    def _fund_facts(self, yf: Any, symbol: str, as_of: date) -> FundFacts | None:
        from yfinance.exceptions import YFRateLimitError

        ticker = yf.Ticker(symbol, session=self._yahoo_session())
        column = ticker.ticker  # yfinance labels fund tables with its upper-cased symbol
        expense_ratio = price_to_book = None
        try:
            funds = ticker.funds_data
            expense_ratio = _expense_fraction(
                _cell(funds.fund_operations, "Annual Report Expense Ratio", column)
            )
            price_to_book = _price_to_book(_cell(funds.equity_holdings, "Price/Book", column))
        except YFRateLimitError:
            raise
        except Exception as exc:  # the info call below may still know the fund
            logger.info("Yahoo Finance fund data for %s unavailable: %s", symbol, exc)
        info = ticker.get_info() or {}
        if expense_ratio is None:
            percent = _finite(info.get("netExpenseRatio"))
            expense_ratio = _expense_fraction(None if percent is None else percent / 100)
        total_assets = _finite(info.get("totalAssets"))
        if total_assets is not None and total_assets <= 0:
            total_assets = None
        if expense_ratio is None and total_assets is None and price_to_book is None:
            return None
        return FundFacts(symbol, as_of, expense_ratio, total_assets, price_to_book, self.name)

    def _refuse_while_backing_off(self) -> None:
        now = self._clock()
        if self.backoff_until is not None and now < self.backoff_until:
            raise MarketRateLimited(
                f"Yahoo Finance asked us to slow down; trying again after {self.backoff_until:%H:%M} UTC."
            )

    def _back_off(self, asking_for: str) -> MarketRateLimited:
        self.backoff_until = self._clock() + self._next_backoff
        logger.warning(
            "Yahoo Finance answered 429 to a request for %s; backing off for %s",
            asking_for,
            self._next_backoff,
        )
        self._next_backoff = min(self._next_backoff * 2, LONGEST_BACKOFF)
        return MarketRateLimited(
            f"Yahoo Finance answered “Too Many Requests” when asked for {asking_for}; "
            f"trying again after {self.backoff_until:%H:%M} UTC."
        )

    def _forget_backoff(self) -> None:
        self.backoff_until = None
        self._next_backoff = FIRST_BACKOFF


class _Failures(logging.Handler):
    """What ``yf.download`` logged about the symbols it could not fetch, in this thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._thread = threading.get_ident()
        self.reasons: dict[str, str] = {}
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread:
            return
        message = record.getMessage()
        self.messages.append(message)
        match = _YAHOO_FAILURE.match(message)
        if match:
            for symbol in re.findall(r"'([^']+)'", match["symbols"]):
                self.reasons[symbol] = match["reason"].strip()

    @property
    def rate_limited(self) -> bool:
        from yfinance.exceptions import YFRateLimitError

        markers = (YFRateLimitError.__name__, str(YFRateLimitError()))
        return any(marker in message for message in self.messages for marker in markers)

    @property
    def symbols(self) -> list[str]:
        return sorted(self.reasons)

    def summary(self) -> str:
        if not self.reasons:
            return "no reason given"
        return "; ".join(f"{symbol}: {reason}" for symbol, reason in sorted(self.reasons.items()))


@contextmanager
def _yfinance_failures() -> Iterator[_Failures]:
    failures = _Failures()
    yf_logger = logging.getLogger("yfinance")
    level, propagate = yf_logger.level, yf_logger.propagate
    if yf_logger.getEffectiveLevel() > logging.ERROR:
        # Logging set quieter than ERROR (CAPGAP_LOG_LEVEL=CRITICAL) would mean no record is made at all, and
        # a rate limit would go unseen: let yfinance's errors reach this handler only, not the log.
        yf_logger.setLevel(logging.ERROR)
        yf_logger.propagate = False
    yf_logger.addHandler(failures)
    try:
        yield failures
    finally:
        yf_logger.removeHandler(failures)
        yf_logger.setLevel(level)
        yf_logger.propagate = propagate


def _empty_closes() -> pd.DataFrame:
    return pd.DataFrame(index=pd.DatetimeIndex([]), dtype=float)


def _closes_from_download(raw: pd.DataFrame | None, wanted: list[str], since: date | None) -> pd.DataFrame:
    """capgap's closes frame from yf.download's (Price, Ticker) columns; unavailable symbols left out."""
    if raw is None or raw.empty or "Close" not in raw.columns.get_level_values(0):
        return _empty_closes()
    by_yahoo_name = raw["Close"]
    columns = {}
    for symbol in wanted:
        yahoo_name = symbol.upper()
        if yahoo_name in by_yahoo_name.columns:
            series = pd.to_numeric(by_yahoo_name[yahoo_name], errors="coerce").astype(float)
            if series.notna().any():
                columns[symbol] = series
    if not columns:
        return _empty_closes()
    closes = pd.DataFrame(columns)
    index = pd.DatetimeIndex(closes.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    # pandas' own default unit, so Yahoo frames line up exactly with frames parsed from CSV dates.
    closes.index = index.normalize().as_unit("us")
    closes = closes[~closes.index.duplicated(keep="last")].sort_index()
    if since is not None:
        closes = closes.loc[pd.Timestamp(since) :]
    closes = closes.dropna(how="all")
    closes.index.name = None
    closes.columns.name = None
    return closes


def _latest_quotes(closes: pd.DataFrame, fetched_at: datetime) -> dict[str, Quote]:
    """Each symbol's last close as a quote: a live bar's price during the session.

    A daily bar carries its date, not the time of its last trade, so a quote is stamped with that
    day's 16:00 New York close, or with the fetch time if the session has not closed yet.
    """
    quotes = {}
    for symbol in closes.columns:
        series = closes[symbol].dropna()
        if series.empty:
            continue
        day = series.index[-1].date()
        closed_at = datetime.combine(day, _SESSION_CLOSE, _NEW_YORK).astimezone(UTC)
        previous = float(series.iloc[-2]) if len(series) > 1 else None
        quotes[symbol] = Quote(symbol, float(series.iloc[-1]), min(closed_at, fetched_at), previous)
    return quotes


def _cell(frame: pd.DataFrame | None, row: str, column: str) -> object:
    if frame is None or row not in frame.index or column not in frame.columns:
        return None
    return frame.at[row, column]


def _finite(value: object) -> float | None:
    """``value`` as a float if it is a finite number; None for missing, NA, text or booleans."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _expense_fraction(value: object) -> float | None:
    """A yearly expense ratio as a fraction, or None.

    0 counts as not reported (Yahoo leaves gaps as 0, and no fund capgap follows is free); a value at
    or above ``EXPENSE_RATIO_CEILING`` is a percent in a fraction's place.
    """
    fraction = _finite(value)
    if fraction is None or not 0 < fraction < EXPENSE_RATIO_CEILING:
        return None
    return fraction


def _price_to_book(book_to_price: object) -> float | None:
    """Yahoo's fund "Price/Book" is really book / price: invert it, and refuse implausible results."""
    ratio = _finite(book_to_price)
    if ratio is None or ratio <= 0:
        return None
    price_to_book = 1.0 / ratio
    low, high = PRICE_TO_BOOK_RANGE
    return price_to_book if low <= price_to_book <= high and math.isfinite(price_to_book) else None
