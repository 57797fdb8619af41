"""A local stand-in for Yahoo Finance that yfinance talks real HTTP to.

``YahooReplay`` serves Yahoo-shaped JSON built from the daily CSV history in ``shared/data`` (chart,
quoteSummary, v7 quote, fundamentals-timeseries, getcrumb, and the fc.yahoo.com cookie endpoint), with a
movable market clock, live prices, fund facts and injectable faults. ``ReplaySession`` is a curl_cffi
Session that sends every ``*.yahoo.com`` request to it, so yfinance's own request and parsing code runs
unchanged. The pytest fixtures at the bottom wire both to a ``YahooSource`` and keep yfinance's on-disk
caches inside the test's ``tmp_path``.

The replay refuses what Yahoo refuses. Each rule, the real behaviour it stands for, and where that
behaviour is on public record:

1. **At most 100 years of daily bars per request.** A ``/v8/finance/chart`` request with ``interval=1d``
   whose ``period2 - period1`` exceeds 100 years answers 400 with
   ``{"chart":{"result":null,"error":{"code":"Bad Request","description":"1d data not available for
   startTime=<p1> and endTime=<p2>. Only 100 years worth of day granularity data are allowed to be
   fetched per request."}}}``. Public logs quote the message verbatim, e.g. "BF.B: 1d data not available
   for startTime=-2208988800 and endTime=1630245075. Only 100 years worth of day granularity data are
   allowed to be fetched per request." (a start in 1900, as capgap once asked), and yfinance's own
   ``period="max"`` asks for 99 years (``start = end - 3122064000  # 99 years`` in
   ``yfinance/scrapers/history.py``). Yahoo does not say how it counts a year; the replay takes the
   strictest reading, 100 × 365 days, which yfinance's 99 × 365 days still passes. The span is judged
   as sent: yfinance fills ``period2`` from the wall clock when it is given no ``end``, whatever clock
   the caller believes in.
2. **quoteSummary and the v7 quote need the crumb of the request's cookie.** fc.yahoo.com sets a fresh
   A3 cookie on each visit; ``/v1/test/getcrumb`` mints one crumb per A3 cookie (the same crumb each time
   it is asked for that cookie, none when it answers with a fault). ``/v10/finance/quoteSummary/…`` and
   ``/v7/finance/quote`` answer 401 ``{"finance":{"result":null,"error":{"code":"Unauthorized",
   "description":"Invalid Crumb"}}}`` unless the ``crumb`` parameter is the crumb minted for the A3
   cookie the request carries, and 401 "Invalid Cookie" when it carries no cookie the replay issued.
   Public reports quote both bodies for these endpoints (e.g. yfinance users' ``HTTP Error 401:
   {"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Crumb"}}}``;
   iprak/yahoofinance#93 and #103 for the v7 quote; scheb/yahoo-finance-api#39 for "Invalid Cookie"),
   and a getcrumb without the cookie answering 401 (Ooples-Finance-LLC/OoplesFinance.YahooFinanceAPI#72).
   The chart endpoint needs neither: Yahoo serves ``/v8/finance/chart`` without a crumb, which is why
   yfinance's prices keep working while its crumb is bad.
3. **A rate-limited getcrumb poisons yfinance's crumb.** Not a rule of the replay but a consequence of
   rule 2 worth knowing: yfinance 1.7 stores the body of a 429 getcrumb answer as its crumb
   (``self._crumb = crumb_response.text`` before raising ``YFRateLimitError`` in ``_get_crumb_basic`` and
   ``_get_crumb_csrf``, ``yfinance/data.py``), so its later requests carry ``crumb=Too Many Requests\r\n``
   and the replay refuses them with 401, as Yahoo does. On a 4xx yfinance flips its cookie strategy and
   asks for a new crumb once, so the poison heals itself once getcrumb answers again.
4. **Outages are not always JSON.** Besides JSON statuses and ``EMPTY`` (200 JSON without data), a
   fault can be ``HTML``, an error page (503 by default, or 200: Yahoo's "Will be right back" page,
   which yfinance's ``history()`` looks for in the body of any answer), or ``BLANK``, a 200 with an empty
   body. Public reports: ranaroussi/yfinance#572 and #578 ("*** YAHOO! FINANCE IS CURRENTLY DOWN! ***
   Our engineers are working quickly to resolve the issue", yfinance's reaction to that page);
   iprak/yahoofinance#32 (a 500 with ``text/html`` from the v7 quote); ranaroussi/yfinance#2520 and
   #760 (``download ['GOOG']: JSONDecodeError('Expecting value: line 1 column 1 (char 0)')``, a body
   that is not JSON, gone again hours later).
5. **The timezone lookup can fail on its own.** yfinance looks a symbol's timezone up with a chart
   request ``range=1d&interval=1d`` through ``YfData.cache_get``, a ``functools.lru_cache`` that keeps
   the failed response for the life of the process (``_fetch_ticker_tz`` in ``yfinance/base.py``,
   ``cache_get`` in ``yfinance/data.py``); its fallback to ``info`` runs at most twice per process
   (``yfinance.base._tz_info_fetch_ctr``). ``fail(..., query=TIMEZONE_LOOKUP)`` aims a fault at that
   lookup alone, so a test can fail the first lookup and let later ones through.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import functools
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import yfinance  # noqa: F401 — imported up front so its warning filters settle before tests run
from curl_cffi import requests as curl_requests
from curl_cffi.const import CurlOpt

from market.yahoo import YahooSource
from testing.world import SHARED_DATA

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR: Final = SHARED_DATA

NEW_YORK: Final = ZoneInfo("America/New_York")
SESSION_OPEN: Final = time(9, 30)
SESSION_CLOSE: Final = time(16, 0)
REPLAY_MARKER: Final = "X-Capgap-Replay"
# Rule 1: Yahoo's 100 years, counted in the strictest way (see the module docstring).
LONGEST_DAILY_SPAN: Final = 100 * 365 * 86400
# Rule 5: the query of yfinance's timezone lookup, for ``fail(..., query=TIMEZONE_LOOKUP)``.
TIMEZONE_LOOKUP: Final[Mapping[str, str]] = {"range": "1d", "interval": "1d"}

# What Yahoo calls each instrument and where it lists it; only used to fill realistic metadata.
_LISTINGS: Final[Mapping[str, tuple[str, str, str]]] = {
    # symbol: (name, exchange code, instrument type)
    "^RUT": ("Russell 2000", "WCB", "INDEX"),
    "^GSPC": ("S&P 500", "SNP", "INDEX"),
    "IWM": ("iShares Russell 2000 ETF", "PCX", "ETF"),
    "VTWO": ("Vanguard Russell 2000 Index Fund ETF Shares", "NGM", "ETF"),
    "SPY": ("SPDR S&P 500 ETF Trust", "PCX", "ETF"),
    "VOO": ("Vanguard S&P 500 ETF", "PCX", "ETF"),
    "IVV": ("iShares Core S&P 500 ETF", "PCX", "ETF"),
}
_FUND_PROFILES: Final[Mapping[str, tuple[str, str]]] = {
    # symbol: (family, Morningstar category)
    "IWM": ("iShares", "Small Blend"),
    "VTWO": ("Vanguard", "Small Blend"),
    "SPY": ("SPDR State Street Global Advisors", "Large Blend"),
    "VOO": ("Vanguard", "Large Blend"),
    "IVV": ("iShares", "Large Blend"),
}
# Yahoo reports splits as chart events even though its Close is already split-adjusted.
_SPLITS: Final[Mapping[str, tuple[tuple[date, int, int], ...]]] = {"VTWO": ((date(2021, 4, 20), 2, 1),)}

_VALID_RANGES: Final = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
_RANGE_OFFSETS: Final[Mapping[str, pd.DateOffset]] = {
    "1mo": pd.DateOffset(months=1),
    "3mo": pd.DateOffset(months=3),
    "6mo": pd.DateOffset(months=6),
    "1y": pd.DateOffset(years=1),
    "2y": pd.DateOffset(years=2),
    "5y": pd.DateOffset(years=5),
    "10y": pd.DateOffset(years=10),
}
_INFO_MODULES: Final = frozenset(
    {"financialData", "quoteType", "defaultKeyStatistics", "assetProfile", "summaryDetail"}
)
_FUND_MODULES: Final = frozenset({"quoteType", "summaryProfile", "topHoldings", "fundProfile"})

EMPTY: Final = "empty"
"""``fail(pattern, EMPTY)``: answer 200 with no data (a chart without timestamps, an empty quote)."""
HTML: Final = "html"
"""``fail(pattern, HTML)``: answer Yahoo's "Will be right back" page as ``text/html`` (503 unless told)."""
BLANK: Final = "blank"
"""``fail(pattern, BLANK)``: answer with an empty body (200 unless told)."""

_OUTAGE_PAGE: Final = (
    b'<!DOCTYPE html><html lang="en-us"><head><meta charset="utf-8"><title>Yahoo</title></head>'
    b'<body><div class="message"><h1>Will be right back...</h1>'
    b"<p>Thank you for your patience.</p><p>Our engineers are working quickly to resolve the issue.</p>"
    b"</div></body></html>"
)

_UNSET: Any = object()


@dataclass(frozen=True)
class ReplayRequest:
    """One request the replay received, as yfinance sent it (before any fault or routing)."""

    method: str
    host: str  # the Yahoo host yfinance addressed, e.g. "query2.finance.yahoo.com"
    path: str  # percent-decoded, e.g. "/v8/finance/chart/^RUT"
    query: Mapping[str, str]
    status: int
    cookie: str | None = None  # the A3 cookie the request carried, if any

    @property
    def symbols(self) -> tuple[str, ...]:
        """The Yahoo symbols this request is about (from the path or the ``symbols`` parameter)."""
        return _symbols_of(self.path, self.query)


@dataclass
class _Fault:
    pattern: str
    status: int | str
    remaining: int | None  # None: until cleared
    query: Mapping[str, str]
    http_status: int | None

    def matches(self, host: str, path: str, query: Mapping[str, str], symbols: tuple[str, ...]) -> bool:
        if any(query.get(name) != value for name, value in self.query.items()):
            return False
        if "/" in self.pattern:
            return fnmatch.fnmatchcase(path, self.pattern)
        if self.pattern.endswith("yahoo.com"):
            return host == self.pattern
        return self.pattern.upper() in symbols


@dataclass
class _FundFacts:
    expense_ratio: float | None  # fraction, served as fundProfile annualReportExpenseRatio
    net_expense_ratio: float | None  # percent, served as v7 quote netExpenseRatio
    total_assets: float | None  # USD, served as summaryDetail/defaultKeyStatistics totalAssets
    book_to_price: float | None = None  # served as topHoldings.equityHoldings.priceToBook


@dataclass(frozen=True)
class _Live:
    price: float
    time: datetime


def _symbols_of(path: str, query: Mapping[str, str]) -> tuple[str, ...]:
    parts = path.rstrip("/").split("/")
    for prefix in (("v8", "finance", "chart"), ("v10", "finance", "quoteSummary")):
        if tuple(parts[1:4]) == prefix and len(parts) == 5:
            return (parts[4].upper(),)
    if path.startswith("/ws/fundamentals-timeseries/") and parts:
        return (parts[-1].upper(),)
    if "symbols" in query:
        return tuple(s.strip().upper() for s in query["symbols"].split(",") if s.strip())
    return ()


def _listing(symbol: str) -> tuple[str, str, str]:
    return _LISTINGS.get(symbol, (symbol, "PCX", "INDEX" if symbol.startswith("^") else "ETF"))


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _exchange_time(day: date, at: time) -> datetime:
    return datetime.combine(day, at, NEW_YORK)


@functools.lru_cache(maxsize=32)
def _load_history(path: Path) -> pd.DataFrame | None:
    """``<stem>_daily.csv`` as Yahoo's daily bars, read once per process; None if not a price history.

    Besides the file's columns, each bar gets ``bar_time`` (Yahoo's timestamp: the session's opening
    minute) and ``close_time`` (16:00 New York), both in epoch seconds.
    """
    frame = pd.read_csv(path, parse_dates=["date"])
    if "close" not in frame.columns:
        return None
    frame = frame.set_index("date").sort_index()
    days = pd.DatetimeIndex(frame.index)
    # Yahoo stamps a daily bar with the session's opening time in exchange time.
    opens = (days + pd.Timedelta(hours=9, minutes=30)).tz_localize(NEW_YORK).tz_convert(UTC)
    closes = (days + pd.Timedelta(hours=16)).tz_localize(NEW_YORK).tz_convert(UTC)
    frame["bar_time"] = (opens - pd.Timestamp(0, tz=UTC)) // pd.Timedelta(seconds=1)
    frame["close_time"] = (closes - pd.Timestamp(0, tz=UTC)) // pd.Timedelta(seconds=1)
    return frame


def _load_funds(path: Path) -> dict[str, _FundFacts]:
    facts: dict[str, _FundFacts] = {}
    if not path.exists():
        return facts
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            ratio = float(row["expense_ratio"]) if row["expense_ratio"] else None
            assets = float(row["total_assets"]) if row["total_assets"] else None
            facts[row["symbol"].upper()] = _FundFacts(
                expense_ratio=ratio,
                net_expense_ratio=None if ratio is None else round(ratio * 100, 6),
                total_assets=assets,
            )
    return facts


def _json_list(values: pd.Series) -> list[float | None]:
    """A price column as JSON values: NaN becomes null, as Yahoo sends it."""
    return [None if v != v else v for v in values.to_numpy(dtype=float).tolist()]  # v != v: NaN


def _json_volumes(values: pd.Series) -> list[int | None]:
    return [None if v != v else int(v) for v in values.to_numpy(dtype=float).tolist()]


class YahooReplay:
    """A Yahoo Finance look-alike on ``127.0.0.1:<port>``, serving the CSV history in ``data_dir``.

    Tests move the market with ``as_of`` and ``set_live``, change fund facts with ``set_fund_facts`` and
    ``set_price_to_book``, inject faults with ``fail``, and count upstream traffic with ``requests``.
    Requests for paths yfinance was not expected to use are logged at WARNING and kept in ``unknown``.
    """

    def __init__(self, data_dir: Path | str = DEFAULT_DATA_DIR) -> None:
        self.data_dir = Path(data_dir)
        self.as_of: date | datetime | None = None
        self._lock = threading.Lock()
        self._requests: list[ReplayRequest] = []
        self._unknown: list[ReplayRequest] = []
        self._errors: list[str] = []
        self._faults: list[_Fault] = []
        self._live: dict[str, _Live] = {}
        self._crumbs: dict[str, str | None] = {}  # A3 cookie -> the crumb minted for it (None: none yet)
        self._funds = _load_funds(self.data_dir / "funds.csv")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> YahooReplay:
        replay = self

        class Handler(_YahooHandler):
            owner = replay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="yahoo-replay",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering, kept-alive connections included: from now on Yahoo cannot be reached."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            connections, self._connections = set(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):  # the client hung up first
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> YahooReplay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("YahooReplay is not running")
        return int(self._server.server_address[1])

    # -- what tests control ----------------------------------------------------------------------

    def set_live(self, symbol: str, price: float, at: datetime) -> None:
        """Make ``price`` the latest regularMarketPrice and last daily bar of ``symbol`` at ``at``."""
        if at.tzinfo is None:
            raise ValueError("live time must be timezone-aware")
        with self._lock:
            self._live[symbol.upper()] = _Live(float(price), at)

    def clear_live(self) -> None:
        with self._lock:
            self._live.clear()

    def set_fund_facts(
        self,
        symbol: str,
        *,
        expense_ratio: float | None = _UNSET,
        net_expense_ratio: float | None = _UNSET,
        total_assets: float | None = _UNSET,
        book_to_price: float | None = _UNSET,
    ) -> None:
        """Override fund fields in Yahoo's own units; None makes Yahoo leave the field out.

        ``expense_ratio`` is a fraction (fundProfile), ``net_expense_ratio`` a percent (v7 quote),
        ``total_assets`` USD, ``book_to_price`` the raw topHoldings.equityHoldings.priceToBook value.
        """
        key = symbol.upper()
        with self._lock:
            facts = self._funds.setdefault(key, _FundFacts(None, None, None))
            if expense_ratio is not _UNSET:
                facts.expense_ratio = expense_ratio
            if net_expense_ratio is not _UNSET:
                facts.net_expense_ratio = net_expense_ratio
            if total_assets is not _UNSET:
                facts.total_assets = total_assets
            if book_to_price is not _UNSET:
                facts.book_to_price = book_to_price

    def set_price_to_book(self, symbol: str, price_to_book: float | None) -> None:
        """Serve ``price_to_book`` the way Yahoo does for funds: inverted, as book / price."""
        book_to_price = None if price_to_book is None else 1.0 / price_to_book
        self.set_fund_facts(symbol, book_to_price=book_to_price)

    def fail(
        self,
        pattern: str,
        status: int | str,
        *,
        times: int | None = None,
        query: Mapping[str, str] | None = None,
        http_status: int | None = None,
    ) -> None:
        """Answer requests matching ``pattern`` with a fault, ``times`` times (None: until cleared).

        ``pattern`` is a symbol (``"IWM"``: any request about it), a host (``"fc.yahoo.com"``) or a path
        glob (``"/v10/finance/quoteSummary/*"``); with ``query``, only requests carrying those parameter
        values match (``TIMEZONE_LOOKUP``: yfinance's timezone lookup alone). ``status`` is an HTTP status
        in Yahoo's shape for that endpoint (401 "Invalid Crumb", 404 not found, 429 "Too Many Requests",
        5xx), ``EMPTY`` for a 200 without data, ``HTML`` for an error page or ``BLANK`` for an empty body;
        ``http_status`` overrides the status an ``HTML`` or ``BLANK`` fault answers with.

        A fault counts HTTP requests, and yfinance sends a failed request (any status from 400 up) a
        second time after renewing its crumb: ``times=1`` with a 4xx/5xx fails one attempt, not one call.
        """
        if http_status is not None and status not in (HTML, BLANK):
            raise ValueError("http_status only applies to HTML and BLANK faults")
        with self._lock:
            self._faults.insert(0, _Fault(pattern, status, times, dict(query or {}), http_status))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[ReplayRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def unknown(self) -> list[ReplayRequest]:
        """Requests for endpoints the replay does not imitate (each was also logged at WARNING)."""
        with self._lock:
            return list(self._unknown)

    @property
    def errors(self) -> list[str]:
        """Exceptions the replay itself raised while answering (each answered 500 and logged)."""
        with self._lock:
            return list(self._errors)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self._unknown.clear()

    # -- data ------------------------------------------------------------------------------------

    def history(self, symbol: str) -> pd.DataFrame | None:
        """The bars the replay would serve for ``symbol`` right now (respecting ``as_of`` and live)."""
        bars = self._history_file(symbol)
        if bars is None:
            return None
        if isinstance(self.as_of, datetime):
            bars = bars[bars["close_time"] <= _epoch(self.as_of)]
        elif isinstance(self.as_of, date):
            bars = bars[bars.index <= pd.Timestamp(self.as_of)]
        with self._lock:
            live = self._live.get(symbol.upper())
        if live is not None:
            bars = self._with_live(bars, live)
        return bars

    def _history_file(self, symbol: str) -> pd.DataFrame | None:
        stem = symbol.upper().lstrip("^")
        if not stem or not stem.replace("-", "").replace(".", "").isalnum():
            return None
        path = self.data_dir / f"{stem}_daily.csv"
        return _load_history(path) if path.is_file() else None

    @staticmethod
    def _with_live(bars: pd.DataFrame, live: _Live) -> pd.DataFrame:
        day = pd.Timestamp(live.time.astimezone(NEW_YORK).date())
        if len(bars) and bars.index[-1] > day:
            return bars
        stamp = _epoch(live.time)
        if len(bars) and bars.index[-1] == day:
            row = bars.iloc[-1].copy()
            bars = bars.iloc[:-1]
        else:
            row = pd.Series(
                {"open": live.price, "high": live.price, "low": live.price, "volume": 0.0},
                dtype=float,
            )
            row["close_time"] = _epoch(_exchange_time(day.date(), SESSION_CLOSE))
        row["close"] = row["adj_close"] = live.price
        row["high"] = np.nanmax([row.get("high", np.nan), live.price])
        row["low"] = np.nanmin([row.get("low", np.nan), live.price])
        # A live daily bar carries the time of the latest trade, not the session open.
        row["bar_time"] = stamp
        return pd.concat([bars, row.to_frame(day).T.astype(bars.dtypes.to_dict())])

    def _facts(self, symbol: str) -> _FundFacts | None:
        with self._lock:
            return self._funds.get(symbol.upper())

    # -- request handling (called from server threads) -------------------------------------------

    def _respond(
        self, method: str, host: str, target: str, cookies: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        symbols = _symbols_of(path, query)
        cookie = _a3_cookie(cookies)
        fault = self._take_fault(host, path, query, symbols)
        if fault is not None:
            status, headers, body = self._fault_response(fault, path, symbols)
            known = True
        else:
            status, headers, body, known = self._route(host, path, query, cookie)
        request = ReplayRequest(method, host, path, query, status, cookie)
        with self._lock:
            self._requests.append(request)
            if not known:
                self._unknown.append(request)
        if not known:
            logger.warning("Yahoo replay has no answer for %s %s%s?%s", method, host, path, parts.query)
        return status, headers, body

    def _take_fault(
        self, host: str, path: str, query: Mapping[str, str], symbols: tuple[str, ...]
    ) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(host, path, query, symbols):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _route(
        self, host: str, path: str, query: dict[str, str], cookie: str | None
    ) -> tuple[int, dict[str, str], bytes, bool]:
        if host == "fc.yahoo.com":
            return (*self._cookie_response(), True)
        if host in {"guce.yahoo.com", "consent.yahoo.com"}:
            # yfinance's consent-cookie fallback; answering without a form makes it give up cleanly.
            return 404, {"Content-Type": "text/html"}, b"<html><body>Not Found</body></html>", True
        if path == "/v1/test/getcrumb":
            return (*self._crumb_response(cookie), True)
        parts = path.rstrip("/").split("/")
        if path.startswith("/v8/finance/chart/") and len(parts) == 5:
            return (*self._chart(parts[4], query), True)
        if path.startswith("/v10/finance/quoteSummary/") and len(parts) == 5:
            return (*(self._refuse_crumb(cookie, query) or self._quote_summary(parts[4], query)), True)
        if path == "/v7/finance/quote":
            return (*(self._refuse_crumb(cookie, query) or self._quote(query)), True)
        if path.startswith("/ws/fundamentals-timeseries/v1/finance/timeseries/"):
            return (*self._timeseries(parts[-1], query), True)
        body = {
            "finance": {"result": None, "error": {"code": "Not Found", "description": "HTTP 404 Not Found"}}
        }
        return (*_json_response(404, body), False)

    def _fault_response(
        self, fault: _Fault, path: str, symbols: tuple[str, ...]
    ) -> tuple[int, dict[str, str], bytes]:
        if fault.status == 429:
            return 429, {"Content-Type": "text/plain"}, b"Too Many Requests\r\n"
        if fault.status == EMPTY:
            return self._empty_response(path, symbols)
        if fault.status == HTML:
            return fault.http_status or 503, {"Content-Type": "text/html; charset=utf-8"}, _OUTAGE_PAGE
        if fault.status == BLANK:
            return fault.http_status or 200, {"Content-Type": "application/json;charset=utf-8"}, b""
        if fault.status == 401:
            return _unauthorized("Invalid Crumb")
        if fault.status == 404:
            return _not_found(path, symbols)
        if isinstance(fault.status, int):
            body = {"finance": {"result": None, "error": {"code": "Internal", "description": "Replay fault"}}}
            return _json_response(fault.status, body)
        raise ValueError(f"unknown replay fault {fault.status!r}")

    def _empty_response(self, path: str, symbols: tuple[str, ...]) -> tuple[int, dict[str, str], bytes]:
        symbol = symbols[0] if symbols else ""
        if path.startswith("/v8/finance/chart/"):
            meta = self._meta(symbol, None, None, "")
            result = {"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}
            return _json_response(200, {"chart": {"result": [result], "error": None}})
        if path.startswith("/v10/finance/quoteSummary/"):
            return _json_response(200, {"quoteSummary": {"result": [{}], "error": None}})
        if path == "/v7/finance/quote":
            return _json_response(200, {"quoteResponse": {"result": [], "error": None}})
        if path.startswith("/ws/fundamentals-timeseries/"):
            return _json_response(200, {"timeseries": {"result": [], "error": None}})
        return 200, {"Content-Type": "text/plain"}, b""

    # -- endpoints -------------------------------------------------------------------------------

    def _cookie_response(self) -> tuple[int, dict[str, str], bytes]:
        # Yahoo answers fc.yahoo.com with a 404 whose only purpose is the A3 cookie for .yahoo.com;
        # yfinance stores it in its cookie cache and skips this request from then on. Not `Secure`,
        # because the replay speaks plain HTTP and curl drops secure cookies from plain origins.
        with self._lock:
            serial = len(self._crumbs) + 1
            value = f"d=AQABBreplay{serial:04d}&S=AQAAAreplay{serial:04d}"
            self._crumbs[value] = None
        # The cookie's expiry is read by yfinance against the wall clock, not the replayed market's.
        expires = (datetime.now(UTC) + timedelta(days=365)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        cookie = (
            f"A3={value}; Expires={expires}; Max-Age=31557600; "
            "Domain=.yahoo.com; Path=/; SameSite=None; HttpOnly"
        )
        return 404, {"Content-Type": "text/html", "Set-Cookie": cookie}, b"<html><body>404</body></html>"

    def _crumb_response(self, cookie: str | None) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            if cookie is None or cookie not in self._crumbs:
                crumb = None
            else:
                crumb = self._crumbs[cookie]
                if crumb is None:  # a new crumb, unlike every one minted before for any cookie
                    serial = sum(minted is not None for minted in self._crumbs.values()) + 1
                    crumb = self._crumbs[cookie] = f"rEpLaYcRuMb{serial:04d}"
        if crumb is None:
            return _unauthorized("Invalid Cookie")
        return 200, {"Content-Type": "text/plain;charset=utf-8"}, crumb.encode()

    def _refuse_crumb(
        self, cookie: str | None, query: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Rule 2: a 401 unless the request's crumb is the one minted for its A3 cookie."""
        with self._lock:
            if cookie is None or cookie not in self._crumbs:
                return _unauthorized("Invalid Cookie")
            minted = self._crumbs[cookie]
        if minted is None or query.get("crumb") != minted:
            return _unauthorized("Invalid Crumb")
        return None

    def _chart(self, symbol: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        symbol = symbol.upper()
        bars = self.history(symbol)
        if bars is None or bars.empty:
            return _not_found("/v8/finance/chart/", (symbol,))
        span = _daily_span(query)
        if span is not None and span[1] - span[0] > LONGEST_DAILY_SPAN:
            description = (
                f"1d data not available for startTime={span[0]} and endTime={span[1]}. "
                "Only 100 years worth of day granularity data are allowed to be fetched per request."
            )
            error = {"code": "Bad Request", "description": description}
            return _json_response(400, {"chart": {"result": None, "error": error}})
        if query.get("interval", "1d") != "1d":
            body = {
                "chart": {
                    "result": None,
                    "error": {"code": "Unprocessable Entity", "description": "Only 1d bars are replayed"},
                }
            }
            logger.warning("Yahoo replay asked for interval %s of %s", query.get("interval"), symbol)
            return _json_response(422, body)
        chosen = self._select(bars, query)
        earlier = bars[bars.index < chosen.index[0]] if len(chosen) else bars
        previous_close = float(earlier["close"].iloc[-1]) if len(earlier) and len(chosen) else None
        meta = self._meta(symbol, bars, previous_close, query.get("range", ""))
        if chosen.empty:
            result: dict[str, Any] = {"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}
            return _json_response(200, {"chart": {"result": [result], "error": None}})
        result = {
            "meta": meta,
            "timestamp": [int(t) for t in chosen["bar_time"]],
            "indicators": {
                "quote": [
                    {
                        "open": _json_list(chosen["open"]),
                        "high": _json_list(chosen["high"]),
                        "low": _json_list(chosen["low"]),
                        "close": _json_list(chosen["close"]),
                        "volume": _json_volumes(chosen["volume"]),
                    }
                ],
                "adjclose": [{"adjclose": _json_list(chosen["adj_close"].fillna(chosen["close"]))}],
            },
        }
        splits = self._split_events(symbol, chosen)
        if splits:
            result["events"] = {"splits": splits}
        return _json_response(200, {"chart": {"result": [result], "error": None}})

    @staticmethod
    def _select(bars: pd.DataFrame, query: dict[str, str]) -> pd.DataFrame:
        if "period1" in query or "period2" in query:
            first = int(query.get("period1") or -(2**62))
            last = int(query.get("period2") or 2**62)
            return bars[(bars["bar_time"] >= first) & (bars["bar_time"] < last)]
        span = query.get("range", "1mo")
        if span == "max" or bars.empty:
            return bars
        if span.endswith("d") and span[:-1].isdigit():
            return bars.iloc[-int(span[:-1]) :]
        end = bars.index[-1]
        if span == "ytd":
            return bars[bars.index >= pd.Timestamp(end.year, 1, 1)]
        return bars[bars.index > end - _RANGE_OFFSETS.get(span, pd.DateOffset(months=1))]

    @staticmethod
    def _split_events(symbol: str, chosen: pd.DataFrame) -> dict[str, dict[str, Any]]:
        events: dict[str, dict[str, Any]] = {}
        for day, numerator, denominator in _SPLITS.get(symbol, ()):
            stamp = pd.Timestamp(day)
            if stamp in chosen.index:
                when = int(chosen["bar_time"].loc[stamp])
                events[str(when)] = {
                    "date": when,
                    "numerator": numerator,
                    "denominator": denominator,
                    "splitRatio": f"{numerator}:{denominator}",
                }
        return events

    def _meta(
        self, symbol: str, bars: pd.DataFrame | None, previous_close: float | None, span: str
    ) -> dict[str, Any]:
        name, exchange, kind = _listing(symbol)
        if bars is None:
            bars = self._history_file(symbol)
        last_day = bars.index[-1].date() if bars is not None and len(bars) else date(2024, 1, 2)
        offset = _exchange_time(last_day, SESSION_OPEN).utcoffset() or timedelta(0)
        zone = _exchange_time(last_day, SESSION_OPEN).tzname() or "EST"

        def period(start: time, end: time) -> dict[str, Any]:
            return {
                "timezone": zone,
                "start": _epoch(_exchange_time(last_day, start)),
                "end": _epoch(_exchange_time(last_day, end)),
                "gmtoffset": int(offset.total_seconds()),
            }

        meta: dict[str, Any] = {
            "currency": "USD",
            "symbol": symbol,
            "exchangeName": exchange,
            "fullExchangeName": exchange,
            "instrumentType": kind,
            "hasPrePostMarketData": kind == "ETF",
            "gmtoffset": int(offset.total_seconds()),
            "timezone": zone,
            "exchangeTimezoneName": "America/New_York",
            "longName": name,
            "shortName": name,
            "priceHint": 2,
            "currentTradingPeriod": {
                "pre": period(time(4, 0), SESSION_OPEN),
                "regular": period(SESSION_OPEN, SESSION_CLOSE),
                "post": period(SESSION_CLOSE, time(20, 0)),
            },
            "dataGranularity": "1d",
            "range": span,
            "validRanges": _VALID_RANGES,
        }
        if bars is not None and len(bars):
            last = bars.iloc[-1]
            with self._lock:
                live = self._live.get(symbol)
            meta |= {
                "firstTradeDate": int(bars["bar_time"].iloc[0]),
                "regularMarketTime": _epoch(live.time) if live is not None else int(last["close_time"]),
                "regularMarketPrice": float(last["close"]),
                "regularMarketDayHigh": None if pd.isna(last["high"]) else float(last["high"]),
                "regularMarketDayLow": None if pd.isna(last["low"]) else float(last["low"]),
                "regularMarketVolume": 0 if pd.isna(last["volume"]) else int(last["volume"]),
                "fiftyTwoWeekHigh": float(bars["close"].iloc[-252:].max()),
                "fiftyTwoWeekLow": float(bars["close"].iloc[-252:].min()),
            }
            if previous_close is not None:
                meta["chartPreviousClose"] = previous_close
            if len(bars) > 1 and span:
                meta["previousClose"] = float(bars["close"].iloc[-2])
        return meta

    def _quote_summary(self, symbol: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        symbol = symbol.upper()
        if self._history_file(symbol) is None:
            return _not_found("/v10/finance/quoteSummary/", (symbol,))
        asked = {m for m in query.get("modules", "").split(",") if m}
        unknown = asked - _INFO_MODULES - _FUND_MODULES
        if unknown:
            logger.warning("Yahoo replay ignores quoteSummary modules %s for %s", sorted(unknown), symbol)
        name, exchange, kind = _listing(symbol)
        facts = self._facts(symbol) if kind == "ETF" else None
        bars = self.history(symbol)
        price = float(bars["close"].iloc[-1]) if bars is not None and len(bars) else None
        summary = f"{name} (Yahoo replay for capgap tests)."
        modules: dict[str, Any] = {
            "quoteType": {
                "exchange": exchange,
                "quoteType": kind,
                "symbol": symbol,
                "underlyingSymbol": symbol,
                "shortName": name,
                "longName": name,
                "timeZoneFullName": "America/New_York",
                "timeZoneShortName": "EST",
                "market": "us_market",
                "messageBoardId": f"finmb_{symbol.lstrip('^')}",
            },
            "summaryProfile": {"longBusinessSummary": summary, "maxAge": 86400},
            "assetProfile": {"longBusinessSummary": summary, "maxAge": 86400},
            "summaryDetail": {"maxAge": 1, "currency": "USD", "previousClose": price},
            "defaultKeyStatistics": {"maxAge": 1},
            "financialData": {"maxAge": 86400},
        }
        if kind == "ETF":
            family, category = _FUND_PROFILES.get(symbol, ("Replay Funds", "Blend"))
            fees: dict[str, Any] = {"annualHoldingsTurnover": 0.2}
            # Yahoo's fund ratios are inverted (earnings / price, book / price); these stay synthetic.
            holdings: dict[str, Any] = {"priceToEarnings": 0.05, "priceToSales": 0.5, "medianMarketCap": 3e3}
            modules["defaultKeyStatistics"] |= {
                "fundFamily": family,
                "category": category,
                "legalType": "Exchange Traded Fund",
            }
            if facts is not None and facts.expense_ratio is not None:
                fees["annualReportExpenseRatio"] = facts.expense_ratio
            if facts is not None and facts.total_assets is not None:
                modules["summaryDetail"]["totalAssets"] = facts.total_assets
                modules["defaultKeyStatistics"]["totalAssets"] = facts.total_assets
            if facts is not None and facts.book_to_price is not None:
                holdings["priceToBook"] = facts.book_to_price
            modules["fundProfile"] = {
                "maxAge": 1,
                "family": family,
                "categoryName": category,
                "legalType": "Exchange Traded Fund",
                "feesExpensesInvestment": fees,
                "feesExpensesInvestmentCat": {"annualReportExpenseRatio": 0.0045},
            }
            modules["topHoldings"] = {
                "maxAge": 1,
                "cashPosition": 0.001,
                "stockPosition": 0.999,
                "bondPosition": 0.0,
                "holdings": [],
                "equityHoldings": holdings,
                "bondHoldings": {},
                "bondRatings": [],
                "sectorWeightings": [],
            }
        result = {name: body for name, body in modules.items() if name in asked}
        return _json_response(200, {"quoteSummary": {"result": [result], "error": None}})

    def _quote(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        found = []
        for symbol in _symbols_of("/v7/finance/quote", query):
            bars = self.history(symbol)
            if bars is None or bars.empty:
                continue
            name, exchange, kind = _listing(symbol)
            last = bars.iloc[-1]
            quote: dict[str, Any] = {
                "language": "en-US",
                "region": "US",
                "quoteType": kind,
                "typeDisp": "ETF" if kind == "ETF" else "Index",
                "currency": "USD",
                "exchange": exchange,
                "shortName": name,
                "longName": name,
                "symbol": symbol,
                "regularMarketPrice": float(last["close"]),
                "regularMarketTime": int(last["close_time"]),
                "exchangeTimezoneName": "America/New_York",
            }
            if len(bars) > 1:
                quote["regularMarketPreviousClose"] = float(bars["close"].iloc[-2])
            facts = self._facts(symbol) if kind == "ETF" else None
            if facts is not None and facts.net_expense_ratio is not None:
                quote["netExpenseRatio"] = facts.net_expense_ratio
            if facts is not None and facts.total_assets is not None:
                quote["netAssets"] = facts.total_assets
            found.append(quote)
        return _json_response(200, {"quoteResponse": {"result": found, "error": None}})

    def _timeseries(self, symbol: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        symbol = symbol.upper()
        if self._history_file(symbol) is None:
            return _json_response(200, {"timeseries": {"result": [], "error": None}})
        kinds = [k for k in query.get("type", "").split(",") if k]
        result = [{"meta": {"symbol": [symbol], "type": [kind]}} for kind in kinds]
        return _json_response(200, {"timeseries": {"result": result, "error": None}})


def _json_response(status: int, body: object) -> tuple[int, dict[str, str], bytes]:
    # NaN/Infinity pass through so tests can serve a non-finite fund field; prices never carry them.
    encoded = json.dumps(body, allow_nan=True).encode()
    return status, {"Content-Type": "application/json;charset=utf-8"}, encoded


def _unauthorized(description: str) -> tuple[int, dict[str, str], bytes]:
    error = {"code": "Unauthorized", "description": description}
    return _json_response(401, {"finance": {"result": None, "error": error}})


def _a3_cookie(header: str) -> str | None:
    """The value of the A3 cookie in a Cookie header (``A3=d=…&S=…``; its value holds ``=`` itself)."""
    for pair in header.split(";"):
        name, _, value = pair.strip().partition("=")
        if name == "A3" and value:
            return value
    return None


def _daily_span(query: Mapping[str, str]) -> tuple[int, int] | None:
    """``(period1, period2)`` of a daily chart request that names both; None otherwise."""
    if query.get("interval", "1d") != "1d" or "period1" not in query or "period2" not in query:
        return None
    try:
        return int(query["period1"]), int(query["period2"])
    except ValueError:
        return None


def _not_found(path: str, symbols: tuple[str, ...]) -> tuple[int, dict[str, str], bytes]:
    symbol = symbols[0] if symbols else ""
    if path.startswith("/v8/finance/chart/"):
        error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
        return _json_response(404, {"chart": {"result": None, "error": error}})
    if path.startswith("/v10/finance/quoteSummary/"):
        error = {"code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}
        return _json_response(404, {"quoteSummary": {"result": None, "error": error}})
    error = {"code": "Not Found", "description": "HTTP 404 Not Found"}
    return _json_response(404, {"finance": {"result": None, "error": error}})


class _YahooHandler(BaseHTTPRequestHandler):
    owner: ClassVar[YahooReplay]
    protocol_version = "HTTP/1.1"  # keep-alive, as curl expects from Yahoo
    timeout = 5  # idle keep-alive connections must not hold a thread after a test

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; with Nagle on, curl's delayed ACK adds ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._answer()

    def _answer(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        try:
            cookies = self.headers.get("Cookie") or ""
            status, headers, body = self.owner._respond(self.command, host, self.path, cookies)
        except Exception as exc:  # a bug in the replay must fail the test, not look like a Yahoo outage
            logger.exception("Yahoo replay failed on %s %s%s", self.command, host, self.path)
            with self.owner._lock:
                self.owner._errors.append(f"{self.command} {host}{self.path}: {exc!r}")
            status, headers, body = 500, {"Content-Type": "text/plain"}, b"replay error"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header(REPLAY_MARKER, "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("yahoo replay: " + format, *args)


class ReplaySession(curl_requests.Session):
    """A curl_cffi Session whose ``*.yahoo.com`` requests all land on a ``YahooReplay``.

    ``https://query2.finance.yahoo.com/v8/...`` becomes ``http://query2.finance.yahoo.com:<port>/v8/...``
    and curl resolves every host on that port to 127.0.0.1. Keeping Yahoo's host names (rather than
    rewriting to ``127.0.0.1``) means the Host header tells fc.yahoo.com from query1/query2, and the A3
    cookie that fc.yahoo.com sets for ``.yahoo.com`` is stored and cached exactly as against Yahoo —
    with a bare IP curl would drop it and yfinance would re-fetch the cookie before every request.
    Anything that is not Yahoo is refused, and a response without the replay's marker header raises,
    so a test can never reach the real internet.
    """

    def __init__(self, replay: YahooReplay, **kwargs: Any) -> None:
        kwargs.setdefault("impersonate", "chrome")
        options = dict(kwargs.pop("curl_options", None) or {})
        options[CurlOpt.RESOLVE] = [f"*:{replay.port}:127.0.0.1"]
        options[CurlOpt.NOPROXY] = "*"  # an http_proxy in the environment must not see test traffic
        super().__init__(curl_options=options, **kwargs)
        self.replay = replay
        # Kept, not read from the replay each time: once the replay stops, requests meet a closed port,
        # as they would meet an unreachable Yahoo.
        self.port = replay.port

    def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        response = super().request(method, self.to_replay(url), *args, **kwargs)
        if response.headers.get(REPLAY_MARKER) != "1":
            raise RuntimeError(f"{url} was not answered by the Yahoo replay")
        return response

    def to_replay(self, url: str) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in {"http", "https"} or not (host == "yahoo.com" or host.endswith(".yahoo.com")):
            raise ValueError(f"ReplaySession only talks to *.yahoo.com, not {url!r}")
        return urlunsplit(("http", f"{host}:{self.port}", parts.path or "/", parts.query, ""))


class ManualClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("clock time must be timezone-aware")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def isolate_yfinance(cache_dir: Path) -> None:
    """Give yfinance fresh process state and caches under ``cache_dir``.

    yfinance keeps its cookie, crumb and response cache in a process-wide singleton, and its tz and
    cookie caches in SQLite files under the user cache dir. Without this, one test's cookie, crumb and
    timezones would change the next test's request count, and tests would write to the real cache.
    ``set_tz_cache_location`` alone is not enough once a cache was opened (the opened cache objects
    keep their database), so the cache singletons are dropped as well.
    """
    import yfinance as yf
    from yfinance import base, cache, data

    cache_dir.mkdir(parents=True, exist_ok=True)
    for manager in (cache._TzDBManager, cache._CookieDBManager, cache._ISINDBManager):
        manager.close_db()
    yf.set_tz_cache_location(str(cache_dir))
    cache._TzCacheManager._tz_cache = None
    cache._CookieCacheManager._Cookie_cache = None
    cache._ISINCacheManager._isin_cache = None
    data.SingletonMeta._instances.pop(data.YfData, None)
    data.YfData.cache_get.cache_clear()
    base._tz_info_fetch_ctr = 0


# 2026-03-06 is the last trading day in shared/data; 21:30 UTC is after that day's close.
REPLAY_NOW: Final = datetime(2026, 3, 6, 21, 30, tzinfo=UTC)


@pytest.fixture
def yahoo_replay(tmp_path: Path) -> Iterator[YahooReplay]:
    """A running Yahoo replay over ``shared/data``, with yfinance's caches kept in ``tmp_path``."""
    isolate_yfinance(tmp_path / "yfinance-cache")
    with YahooReplay(DEFAULT_DATA_DIR) as replay:
        yield replay
    isolate_yfinance(tmp_path / "yfinance-cache")


@pytest.fixture
def yahoo_clock() -> ManualClock:
    """The clock ``yahoo_source`` reads: REPLAY_NOW until the test advances it."""
    return ManualClock(REPLAY_NOW)


@pytest.fixture
def yahoo_source(yahoo_replay: YahooReplay, yahoo_clock: Callable[[], datetime]) -> Iterator[YahooSource]:
    """A YahooSource whose requests all go to ``yahoo_replay``, reading ``yahoo_clock``."""
    session = ReplaySession(yahoo_replay)
    try:
        yield YahooSource(session=session, clock=yahoo_clock)
    finally:
        session.close()


__all__ = [
    "BLANK",
    "DEFAULT_DATA_DIR",
    "EMPTY",
    "HTML",
    "LONGEST_DAILY_SPAN",
    "REPLAY_NOW",
    "TIMEZONE_LOOKUP",
    "ManualClock",
    "ReplayRequest",
    "ReplaySession",
    "YahooReplay",
    "isolate_yfinance",
    "yahoo_clock",
    "yahoo_replay",
    "yahoo_source",
]
