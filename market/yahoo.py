"""Yahoo Finance through yfinance — the one module in capgap that imports yfinance.

yfinance is imported inside the methods that use it, so importing this module stays cheap for code
paths (CLI help, tests of other modules) that never talk to Yahoo.

Facts about yfinance 1.7 and Yahoo that shape this module:

- Its HTTP session is process-wide: every call installs the ``session=`` it is given (and
  ``download()`` without one installs a fresh default). So every call here passes our session, and a
  module lock keeps two sources from swapping sessions under each other's requests.
- ``download()`` catches each symbol's exception and only *logs* it (``yf.shared._ERRORS`` is no
  longer filled). A rate limit and a delisted symbol both come back as a missing column; the only
  public place the difference shows is the ``yfinance`` logger, so ``fetch`` listens to it, with
  yfinance's ``hide_exceptions`` off so that each symbol's failure is logged as the exception it was
  (``download`` means to do that itself, but sets ``YfConfig.network.hide_exceptions``, a key nothing
  reads). Otherwise an outage page and a chart without data read the same: "no price data found".
- Yahoo refuses a daily chart request spanning more than 100 years, and yfinance fills a missing
  ``end`` from the wall clock: every request here names both ends, from the source's own clock.
- ``YfData.cache_get`` keeps answers for the life of the process, failed ones included: the timezone
  lookup, and chart requests whose end lies in the past. A symbol lost to a passing failure would stay
  lost, so each download starts with that cache emptied.
- Without a valid crumb Yahoo answers quoteSummary and the v7 quote 401 "Invalid Crumb"; yfinance keeps
  a rate-limited getcrumb's body as its crumb. A 401 or 429 that reaches this module means Yahoo is
  refusing us, and is treated as a rate limit.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from market.calendar import NEW_YORK, REGULAR_CLOSE
from market.model import (
    EXPENSE_RATIO_CEILING,
    FundFacts,
    MarketData,
    MarketRateLimited,
    MarketUnavailable,
    Quote,
)
from market.plausibility import PRICE_TO_BOOK_RANGE, PRICE_TO_EARNINGS_RANGE

if TYPE_CHECKING:
    from curl_cffi.requests import Session

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Yahoo serves at most 100 years of daily bars per request; yfinance's own period="max" asks for 99.
# Enough for every series capgap follows (Yahoo's ^GSPC history starts on 1927-12-30).
HISTORY_YEARS: Final = 99
FIRST_BACKOFF: Final = timedelta(seconds=60)
LONGEST_BACKOFF: Final = timedelta(minutes=30)

_YAHOO_FAILURE: Final = re.compile(r"^\s*\[(?P<symbols>[^\]]*)\]:\s*(?P<reason>.+)$", re.DOTALL)
# What yfinance's logged failures look like when Yahoo was out of reach or sent something other than
# JSON: curl_cffi's connection errors, and the exceptions yfinance meets parsing an error page.
_OUT_OF_REACH: Final = re.compile(
    r"\b(ConnectionError|DNSError|ConnectTimeout|ReadTimeout|Timeout|ProxyError|SSLError)\(|curl: \(\d+\)"
)
_ERROR_PAGE: Final = re.compile(r"CURRENTLY DOWN|JSONDecodeError|Expecting value")
_REFUSING_STATUS: Final = re.compile(r"HTTP Error (?P<status>401|429)\b")

UNREACHABLE: Final = "Yahoo Finance could not be reached."
ERROR_PAGE: Final = "Yahoo Finance answered with an error page."

# yfinance's session is process-wide state; serialise every call that installs ours.
_YFINANCE: Final = threading.Lock()


class YahooSource:
    """Daily closes, latest quotes and ETF facts from Yahoo Finance (one batched download per refresh).

    After Yahoo answers 429, or 401 for want of a crumb it would not give, the source backs off (60 s,
    doubling to 30 min, reset by a success) and until ``backoff_until`` raises ``MarketRateLimited``
    without sending anything.
    """

    name = "Yahoo Finance"

    def __init__(
        self,
        session: Session | None = None,
        clock: Clock | None = None,
        history_start: date | None = None,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self.history_start = history_start
        self.backoff_until: datetime | None = None
        self._next_backoff = FIRST_BACKOFF

    # -- MarketSource ----------------------------------------------------------------------------

    def fetch(self, symbols: Sequence[str], since: date | None = None) -> MarketData:
        """Daily closes of ``symbols`` from ``since`` plus their latest quotes.

        ``since`` None means ``history_start``, or as far back as Yahoo serves in one request
        (``HISTORY_YEARS`` before the clock's date); an earlier date is moved up to that.

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

            start, end = self._history_window(since)
            _forget_yfinance_answers()
            with _yfinance_failures() as failures, _yfinance_raising(yf):
                try:
                    raw = yf.download(
                        wanted,
                        start=start,
                        end=end,
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
                    raise self._back_off("prices", "HTTP 429 Too Many Requests") from None
            fetched_at = self._clock()

            closes = _closes_from_download(raw, wanted, since)
            if failures.rate_limited:
                asked = ", ".join(failures.symbols) or ", ".join(wanted)
                raise self._back_off(
                    f"prices of {asked}", f"HTTP 429 Too Many Requests ({failures.summary()})"
                )
            missing = [s for s in wanted if s not in closes.columns]
            if closes.columns.empty:
                reason = _why_no_prices(missing, failures.summary())
                detail = f"Yahoo Finance sent no prices for {', '.join(missing)}: {failures.summary()}"
                logger.warning("%s", detail)
                raise MarketUnavailable(reason, detail)
            self._forget_backoff()
        if missing:
            logger.warning(
                "%s (%s: %s)",
                _why_no_prices(missing, failures.summary()).rstrip("."),
                ", ".join(missing),
                failures.summary(),
            )
        adjusted = _closes_from_download(
            raw, [s for s in closes.columns if not s.startswith("^")], since, "Adj Close"
        )
        return MarketData(
            closes,
            _latest_quotes(closes, fetched_at),
            self.name,
            fetched_at,
            adjusted=adjusted.reindex(index=closes.index) if not adjusted.columns.empty else None,
        )

    def fetch_funds(self, symbols: Sequence[str]) -> list[FundFacts]:
        """Expense ratio, total assets and price-to-book of the funds among ``symbols``.

        Index symbols (``^...``) are skipped. Each fund costs three or four requests (quoteSummary for
        the fund data; quoteSummary, v7 quote and a timeseries call, which yfinance caches until the next
        price download, behind ``info``). A fund Yahoo fails on (a 404, an error page) is logged and left
        out; a field Yahoo leaves out is None. Yahoo refusing us (429, or 401 because yfinance could get
        no valid crumb) stops the round and starts the backoff; Yahoo out of reach stops it too. If no
        fund came back and some failed, ``MarketUnavailable`` says why.
        """
        funds = [s for s in dict.fromkeys(symbols) if not s.startswith("^")]
        with _YFINANCE:
            self._refuse_while_backing_off()
            if not funds:
                return []

            import yfinance as yf

            as_of = self._clock().date()
            facts: list[FundFacts] = []
            failed: dict[str, str] = {}
            for symbol in funds:
                asking_for = f"fund facts of {symbol}"
                with _yfinance_failures() as failures:
                    try:
                        fact = self._fund_facts(yf, symbol, as_of)
                    except Exception as exc:  # one fund's failure must not cost the others their facts
                        refusal = _refusal(exc)
                        if refusal is not None:
                            raise self._back_off(asking_for, refusal) from None
                        account = _account(exc)
                        if _OUT_OF_REACH.search(account):
                            detail = f"Yahoo Finance could not be reached for {asking_for}: {account}"
                            logger.warning("%s", detail)
                            raise MarketUnavailable(UNREACHABLE, detail) from None
                        logger.warning("Yahoo Finance gave no fund facts for %s: %s", symbol, account)
                        failed[symbol] = account
                        continue
                # yfinance's info logs a refused quoteSummary or v7 quote instead of raising it.
                refused = failures.refusing_status
                if refused is not None:
                    raise self._back_off(asking_for, f"HTTP {refused} ({failures.summary()})")
                if fact is None:
                    logger.warning("Yahoo Finance knows none of %s's fund facts", symbol)
                    continue
                facts.append(fact)
            if not facts and failed:
                accounts = "; ".join(f"{symbol}: {account}" for symbol, account in failed.items())
                detail = f"Yahoo Finance sent no fund facts for {', '.join(failed)}: {accounts}"
                logger.warning("%s", detail)
                if _ERROR_PAGE.search(accounts) or re.search(r"HTTP Error 5\d\d", accounts):
                    raise MarketUnavailable(ERROR_PAGE, detail)
                raise MarketUnavailable(f"Yahoo Finance sent no fund facts for {', '.join(failed)}.", detail)
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

    def _history_window(self, since: date | None) -> tuple[date, date]:
        """The first and the day after the last date to ask Yahoo for, both from the source's clock.

        An explicit end keeps yfinance from filling ``period2`` from the wall clock, so the span stays
        within Yahoo's 100 years however the clock is set; the day after the clock's UTC date is past
        the latest bar in every time zone the market trades in.
        """
        today = self._clock().astimezone(UTC).date()
        earliest = _years_before(today, HISTORY_YEARS)
        wanted = since or self.history_start or earliest
        return max(wanted, earliest), today + timedelta(days=1)

    def _fund_facts(self, yf: Any, symbol: str, as_of: date) -> FundFacts | None:
        ticker = yf.Ticker(symbol, session=self._yahoo_session())
        column = ticker.ticker  # yfinance labels fund tables with its upper-cased symbol
        expense_ratio = price_to_book = price_to_earnings = None
        funds_failure: str | None = None
        try:
            funds = ticker.funds_data
            expense_ratio = _expense_fraction(
                _cell(funds.fund_operations, "Annual Report Expense Ratio", column)
            )
            price_to_book = _inverted(_cell(funds.equity_holdings, "Price/Book", column), PRICE_TO_BOOK_RANGE)
            price_to_earnings = _inverted(
                _cell(funds.equity_holdings, "Price/Earnings", column), PRICE_TO_EARNINGS_RANGE
            )
        except Exception as exc:
            if _refusal(exc) is not None or _OUT_OF_REACH.search(_account(exc)):
                raise  # the info call below would meet the same refusal
            # The info call below may still know the fund.
            funds_failure = _account(exc)
            logger.info("Yahoo Finance fund data for %s unavailable: %s", symbol, funds_failure)
        try:
            info = ticker.get_info() or {}
        except Exception as exc:
            if funds_failure is None or _refusal(exc) is not None or _OUT_OF_REACH.search(_account(exc)):
                raise
            # Both calls failed: the account keeps the first answer too (info often fails on what
            # yfinance made of it, e.g. a JSONDecodeError, where the fund data call saw the HTTP status).
            raise _FundFailure(f"{funds_failure}; then {_account(exc)}") from exc
        if expense_ratio is None:
            percent = _finite(info.get("netExpenseRatio"))
            expense_ratio = _expense_fraction(None if percent is None else percent / 100)
        total_assets = _finite(info.get("totalAssets"))
        if total_assets is not None and total_assets <= 0:
            total_assets = None
        if (
            expense_ratio is None
            and total_assets is None
            and price_to_book is None
            and price_to_earnings is None
        ):
            return None
        return FundFacts(
            symbol, as_of, expense_ratio, total_assets, price_to_book, self.name, price_to_earnings
        )

    def _refuse_while_backing_off(self) -> None:
        now = self._clock()
        if self.backoff_until is not None and now < self.backoff_until:
            raise MarketRateLimited(
                _rate_limited(self.backoff_until),
                f"backing off from Yahoo Finance until {self.backoff_until:%Y-%m-%d %H:%M:%S} UTC; "
                "nothing sent",
            )

    def _back_off(self, asking_for: str, answer: str) -> MarketRateLimited:
        """Start (or lengthen) the backoff after Yahoo refused ``asking_for`` with ``answer``."""
        self.backoff_until = self._clock() + self._next_backoff
        detail = (
            f"Yahoo Finance refused a request for {asking_for}: {answer}; "
            f"backing off for {self._next_backoff} until {self.backoff_until:%Y-%m-%d %H:%M:%S} UTC"
        )
        logger.warning("%s", detail)
        self._next_backoff = min(self._next_backoff * 2, LONGEST_BACKOFF)
        return MarketRateLimited(_rate_limited(self.backoff_until), detail)

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
    def refusing_status(self) -> int | None:
        """401 or 429 if yfinance logged Yahoo answering a request with one, else None."""
        for message in self.messages:
            match = _REFUSING_STATUS.search(message)
            if match:
                return int(match["status"])
        return None

    @property
    def symbols(self) -> list[str]:
        return sorted(self.reasons)

    def summary(self) -> str:
        if self.reasons:
            return "; ".join(f"{symbol}: {reason}" for symbol, reason in sorted(self.reasons.items()))
        if self.messages:
            return "; ".join(_first_line(message) for message in self.messages)
        return "no reason given"


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


@contextmanager
def _yfinance_raising(yf: Any) -> Iterator[None]:
    """Let yfinance raise inside ``download``, which logs each symbol's exception as ``[symbols]: repr``.

    With exceptions hidden, a history request answered by an error page (HTML or an empty body) is
    logged as "possibly delisted; no price data found", the same words as a chart without data; raised,
    it is ``YFDataException('*** YAHOO! FINANCE IS CURRENTLY DOWN! ***')`` or a ``JSONDecodeError``.
    """
    debug = getattr(getattr(yf, "config", None), "debug", None)
    if debug is None:  # a yfinance without the switch: the failures read less precisely, nothing breaks
        yield
        return
    hidden = debug.hide_exceptions
    debug.hide_exceptions = False
    try:
        yield
    finally:
        debug.hide_exceptions = hidden


def _forget_yfinance_answers() -> None:
    """Empty yfinance's process-long cache of answers, so a failed timezone lookup is asked again.

    yfinance's fallback from a failed lookup to ``info`` runs at most twice per process
    (``yfinance.base._tz_info_fetch_ctr``); once spent, only a fresh lookup brings a symbol back. The
    counter is left alone: it bounds the extra requests yfinance sends while Yahoo is failing, and the
    next refresh asks again anyway.
    """
    try:
        from yfinance.data import YfData
    except ImportError:
        return
    clear = getattr(getattr(YfData, "cache_get", None), "cache_clear", None)
    if callable(clear):
        clear()


def _why_no_prices(symbols: Sequence[str], account: str) -> str:
    """One sentence for a person on why Yahoo sent no prices for ``symbols``, from yfinance's account."""
    if _OUT_OF_REACH.search(account):
        return UNREACHABLE
    if _ERROR_PAGE.search(account):
        return ERROR_PAGE
    return f"Yahoo Finance sent no prices for {', '.join(symbols)}."


def _rate_limited(until: datetime) -> str:
    return f"Yahoo Finance is rate-limiting requests; trying again after {until:%H:%M} UTC."


def _refusal(exc: BaseException) -> str | None:
    """How Yahoo refused us, if ``exc`` says it did: a 429 (yfinance's own error), or an HTTP 401/429.

    yfinance raises ``YFRateLimitError`` for a 429 it met twice, and lets curl_cffi's ``HTTPError``
    through from ``funds_data``; a 401 there means it retried with a fresh crumb and still had none.
    """
    from yfinance.exceptions import YFRateLimitError

    if isinstance(exc, YFRateLimitError):
        return "HTTP 429 Too Many Requests"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status in (401, 429):
        body = _first_line(getattr(response, "text", "") or "")
        return f"HTTP {status} {body}".rstrip()
    return None


class _FundFailure(Exception):
    """Both of a fund's calls failed; the message is the account of each."""


def _account(exc: BaseException) -> str:
    """``exc`` for the log: its type and message, and the status and body of an HTTP error."""
    if isinstance(exc, _FundFailure):
        return str(exc)
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = f"{type(exc).__name__}: {_first_line(str(exc))}"
    if status:
        text += f" ({_first_line(getattr(response, 'text', '') or '')[:200]})"
    return text


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February, in a year that has none
        return day.replace(year=day.year - years, day=28)


def _empty_closes() -> pd.DataFrame:
    return pd.DataFrame(index=pd.DatetimeIndex([]), dtype=float)


def _closes_from_download(
    raw: pd.DataFrame | None, wanted: list[str], since: date | None, price: str = "Close"
) -> pd.DataFrame:
    """capgap's closes frame from yf.download's (Price, Ticker) columns; unavailable symbols left out.

    ``price`` "Adj Close" gives the adjusted closes instead (yfinance sends them with ``auto_adjust=False``).
    """
    if raw is None or raw.empty or price not in raw.columns.get_level_values(0):
        return _empty_closes()
    by_yahoo_name = raw[price]
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
        closed_at = datetime.combine(day, REGULAR_CLOSE, NEW_YORK).astimezone(UTC)
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


def _inverted(yield_: object, plausible: tuple[float, float]) -> float | None:
    """Yahoo's fund "Price/Book" and "Price/Earnings" (topHoldings.equityHoldings priceToBook and
    priceToEarnings) are really book / price and earnings / price: invert one, and refuse a result outside
    ``plausible``."""
    ratio = _finite(yield_)
    if ratio is None or ratio <= 0:
        return None
    multiple = 1.0 / ratio
    low, high = plausible
    return multiple if low <= multiple <= high and math.isfinite(multiple) else None
