"""The replay server: a threaded HTTP server on 127.0.0.1 that records every request, routes it to a
fault or an endpoint, and the curl_cffi session, clock and pytest fixtures that put yfinance on it."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import pytest
import yfinance  # noqa: F401 — imported up front so its warning filters settle before tests run
from curl_cffi import requests as curl_requests
from curl_cffi.const import CurlOpt

from market.yahoo import YahooSource
from testing.world import SHARED_DATA
from testing.yahoo.faults import FaultInjection, _Fault
from testing.yahoo.payloads import Payloads, _FundFacts, _json_response, _Live, _load_funds, _symbols_of

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR: Final = SHARED_DATA
REPLAY_MARKER: Final = "X-Capgap-Replay"


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


class YahooReplay(FaultInjection, Payloads):
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
        earnings_to_price: float | None = _UNSET,
    ) -> None:
        """Override fund fields in Yahoo's own units; None makes Yahoo leave the field out.

        ``expense_ratio`` is a fraction (fundProfile), ``net_expense_ratio`` a percent (v7 quote),
        ``total_assets`` USD, ``book_to_price`` and ``earnings_to_price`` the raw
        topHoldings.equityHoldings priceToBook and priceToEarnings values.
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
            if earnings_to_price is not _UNSET:
                facts.earnings_to_price = earnings_to_price

    def set_price_to_book(self, symbol: str, price_to_book: float | None) -> None:
        """Serve ``price_to_book`` the way Yahoo does for funds: inverted, as book / price."""
        book_to_price = None if price_to_book is None else 1.0 / price_to_book
        self.set_fund_facts(symbol, book_to_price=book_to_price)

    def set_price_to_earnings(self, symbol: str, price_to_earnings: float) -> None:
        """Serve ``price_to_earnings`` the way Yahoo does for funds: inverted, as earnings / price."""
        self.set_fund_facts(symbol, earnings_to_price=1.0 / price_to_earnings)

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


def _a3_cookie(header: str) -> str | None:
    """The value of the A3 cookie in a Cookie header (``A3=d=…&S=…``; its value holds ``=`` itself)."""
    for pair in header.split(";"):
        name, _, value = pair.strip().partition("=")
        if name == "A3" and value:
            return value
    return None


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
