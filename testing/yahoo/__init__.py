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

Where things are: ``server`` (the HTTP server, request log and routing, ``ReplaySession``, ``ManualClock``
and the pytest fixtures ``yahoo_replay``, ``yahoo_clock``, ``yahoo_source``), ``payloads`` (the endpoints'
bodies, built from the CSV history), ``faults`` (``fail`` and the fault answers).
"""

from testing.yahoo.faults import BLANK, EMPTY, HTML, TIMEZONE_LOOKUP
from testing.yahoo.payloads import LONGEST_DAILY_SPAN
from testing.yahoo.server import (
    DEFAULT_DATA_DIR,
    REPLAY_NOW,
    ManualClock,
    ReplayRequest,
    ReplaySession,
    YahooReplay,
    isolate_yfinance,
    yahoo_clock,
    yahoo_replay,
    yahoo_source,
)

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
