"""YahooSource against a replay as strict as Yahoo: the 100-year limit, crumbs, outages that are not JSON,
a failed timezone lookup that yfinance would remember, and reasons a person can read."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from market.model import MarketRateLimited, MarketUnavailable
from market.yahoo import ERROR_PAGE, FIRST_BACKOFF, UNREACHABLE, YahooSource
from testing import yahoo as harness
from testing.yahoo import (
    BLANK,
    HTML,
    LONGEST_DAILY_SPAN,
    REPLAY_NOW,
    TIMEZONE_LOOKUP,
    ManualClock,
    ReplayRequest,
    ReplaySession,
    YahooReplay,
)

yahoo_replay = harness.yahoo_replay
yahoo_clock = harness.yahoo_clock
yahoo_source = harness.yahoo_source

ALL_SYMBOLS = ("^RUT", "^GSPC", "IWM", "VTWO", "SPY", "VOO", "IVV")
ETFS = ("IWM", "VTWO", "SPY", "VOO", "IVV")
NEW_YORK = ZoneInfo("America/New_York")
RECENT = date(2026, 3, 1)  # only the indices have bars this late; the ETF files end in 2023-2024
# What yfinance or curl would say, and a person should not read.
JARGON = ("yfinance", "delisted", "curl", "Error", "Exception", "HTTP", "JSON", "crumb", "(", "$")


@pytest.fixture(autouse=True)
def _every_request_was_understood(yahoo_replay: YahooReplay):
    yield
    assert yahoo_replay.unknown == []
    assert yahoo_replay.errors == []


def plain(reason: str) -> str:
    """``reason`` if it is one short sentence without yfinance's, curl's or HTTP's words."""
    assert len(reason) <= 100, reason
    assert reason.endswith("."), reason
    assert not [word for word in JARGON if word in reason], reason
    return reason


def history_requests(requests: list[ReplayRequest]) -> list[ReplayRequest]:
    return [r for r in requests if r.path.startswith("/v8/finance/chart/") and "period1" in r.query]


def new_york_midnight(day: date) -> int:
    return int(datetime.combine(day, time(0), NEW_YORK).timestamp())


# -- the replay is as strict as Yahoo ------------------------------------------------------------------


def test_the_replay_refuses_more_than_100_years_of_daily_bars_in_one_request(yahoo_replay: YahooReplay):
    session = ReplaySession(yahoo_replay)
    url = "https://query2.finance.yahoo.com/v8/finance/chart/^GSPC"
    try:
        refused = session.get(url, params={"period1": -2208988800, "period2": 1630245075, "interval": "1d"})
        # yfinance's own period="max": 99 years back from period2.
        served = session.get(url, params={"period1": 1630245075 - 3122064000, "period2": 1630245075})
    finally:
        session.close()

    assert refused.status_code == 400
    assert refused.json() == {
        "chart": {
            "result": None,
            "error": {
                "code": "Bad Request",
                "description": "1d data not available for startTime=-2208988800 and endTime=1630245075. "
                "Only 100 years worth of day granularity data are allowed to be fetched per request.",
            },
        }
    }
    assert served.status_code == 200
    assert LONGEST_DAILY_SPAN > 3122064000  # the replay lets yfinance's own 99 years through


def test_the_replay_serves_quote_summary_and_quotes_only_with_the_crumb_of_the_requests_cookie(
    yahoo_replay: YahooReplay,
):
    first, second = ReplaySession(yahoo_replay), ReplaySession(yahoo_replay)
    summary = "https://query2.finance.yahoo.com/v10/finance/quoteSummary/IWM"
    quote = "https://query1.finance.yahoo.com/v7/finance/quote"
    crumb_url = "https://query1.finance.yahoo.com/v1/test/getcrumb"
    try:
        no_cookie = first.get(summary, params={"modules": "quoteType"})
        for session in (first, second):
            session.get("https://fc.yahoo.com")
        crumb = first.get(crumb_url).text
        yahoo_replay.fail("/v1/test/getcrumb", 429, times=1)
        rate_limited = second.get(crumb_url)
        answers = {
            "no crumb": first.get(summary, params={"modules": "quoteType"}),
            "right crumb": first.get(summary, params={"modules": "quoteType", "crumb": crumb}),
            "quote, right crumb": first.get(quote, params={"symbols": "IWM", "crumb": crumb}),
            "429 body as crumb": second.get(quote, params={"symbols": "IWM", "crumb": rate_limited.text}),
            "another cookie's crumb": second.get(summary, params={"modules": "quoteType", "crumb": crumb}),
            "chart, no crumb": second.get("https://query2.finance.yahoo.com/v8/finance/chart/IWM"),
        }
        crumb_again, second_crumb = first.get(crumb_url).text, second.get(crumb_url).text
    finally:
        first.close()
        second.close()

    invalid_crumb = {
        "finance": {"result": None, "error": {"code": "Unauthorized", "description": "Invalid Crumb"}}
    }
    assert no_cookie.status_code == 401
    assert no_cookie.json()["finance"]["error"]["description"] == "Invalid Cookie"
    assert rate_limited.status_code == 429
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "no crumb": 401,
        "right crumb": 200,
        "quote, right crumb": 200,
        "429 body as crumb": 401,
        "another cookie's crumb": 401,
        "chart, no crumb": 200,
    }
    assert answers["no crumb"].json() == invalid_crumb
    assert answers["429 body as crumb"].json() == invalid_crumb
    assert crumb_again == crumb  # one crumb per cookie, however often it is asked for
    assert second_crumb not in {crumb, rate_limited.text}


# -- history within what Yahoo serves ------------------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [REPLAY_NOW, datetime(2024, 9, 13, 21, 30, tzinfo=UTC), datetime(2031, 1, 6, 21, 30, tzinfo=UTC)],
    ids=["replay's last day", "a clock long before the wall clock", "a clock after it"],
)
def test_a_first_fetch_of_the_whole_history_returns_every_symbol_within_yahoos_hundred_years(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock, now: datetime
):
    """With since=None the request used to start in 1900 and end at the wall clock: Yahoo refused it."""
    yahoo_clock.now = now
    yahoo_replay.as_of = now

    data = yahoo_source.fetch(ALL_SYMBOLS)

    assert list(data.closes.columns) == list(ALL_SYMBOLS)
    assert data.closes.index[-1].date() == min(now.date(), date(2026, 3, 6))
    # All of Yahoo's ^GSPC (from 1927-12-30) while that is within 99 years; from 2027 on, 99 years of it
    # (1932-01-06, 99 years before the latest clock, was a trading day).
    earliest = now.date().replace(year=now.year - 99)
    assert data.closes["^GSPC"].first_valid_index() == datetime.combine(
        max(earliest, date(1927, 12, 30)), time(0)
    )
    sent = history_requests(yahoo_replay.requests)
    assert sorted(r.symbols[0] for r in sent) == sorted(ALL_SYMBOLS)
    for request in sent:
        period1, period2 = int(request.query["period1"]), int(request.query["period2"])
        assert period2 == new_york_midnight(now.date() + timedelta(days=1))
        assert period2 - period1 <= LONGEST_DAILY_SPAN
        assert request.status == 200


def test_a_since_earlier_than_yahoo_serves_is_moved_up_instead_of_refused(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    data = yahoo_source.fetch(["^GSPC", "^RUT"], since=date(1900, 1, 1))

    assert list(data.closes.columns) == ["^GSPC", "^RUT"]
    assert {r.status for r in history_requests(yahoo_replay.requests)} == {200}


# -- a passing failure does not last for the life of the process -------------------------------------


def test_a_symbol_lost_to_a_failed_timezone_lookup_comes_back_on_the_next_fetch(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    """yfinance remembers a failed lookup for the life of the process, and falls back to ``info`` only
    twice per process: a process that has run a while (here: two fetches that met a symbol Yahoo does
    not know) has spent both, and from then on only a fresh lookup finds ^RUT's timezone."""
    for _ in range(2):
        yahoo_source.fetch(["^GSPC", "NOSUCH"], since=RECENT)
    yahoo_replay.fail("/v8/finance/chart/^RUT", BLANK, times=1, query=TIMEZONE_LOOKUP)

    first = yahoo_source.fetch(["^RUT", "^GSPC"], since=RECENT)
    second = yahoo_source.fetch(["^RUT", "^GSPC"], since=RECENT)

    assert list(first.closes.columns) == ["^GSPC"]
    assert list(second.closes.columns) == ["^RUT", "^GSPC"]
    lookups = [r for r in yahoo_replay.requests if r.symbols == ("^RUT",) and r.query.get("range") == "1d"]
    assert [r.status for r in lookups] == [200, 200]  # the blank answer, then a lookup asked anew


# -- the fund round backs off when Yahoo refuses us ---------------------------------------------------


def test_a_rate_limited_crumb_stops_the_fund_round_and_backs_off(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    """yfinance turns a 429 from getcrumb into quoteSummary 401s "Invalid Crumb": Yahoo is refusing us,
    not failing on one fund, so the round stops and nothing is sent until the backoff has passed."""
    yahoo_replay.fail("/v1/test/getcrumb", 429)

    with pytest.raises(MarketRateLimited) as raised:
        yahoo_source.fetch_funds(ETFS)

    assert (
        plain(str(raised.value)) == "Yahoo Finance is rate-limiting requests; trying again after 21:31 UTC."
    )
    assert "401" in raised.value.detail and "Invalid Crumb" in raised.value.detail
    assert "IWM" in raised.value.detail
    assert yahoo_source.backoff_until == yahoo_clock.now + FIRST_BACKOFF
    assert {r.symbols for r in yahoo_replay.requests if r.symbols} == {("IWM",)}  # stopped at the first

    sent = len(yahoo_replay.requests)
    yahoo_clock.advance(FIRST_BACKOFF - timedelta(seconds=1))
    with pytest.raises(MarketRateLimited):
        yahoo_source.fetch_funds(ETFS)
    with pytest.raises(MarketRateLimited):
        yahoo_source.fetch(["^RUT"], since=RECENT)
    assert len(yahoo_replay.requests) == sent


def test_an_invalid_crumb_stops_the_fund_round_and_backs_off(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    yahoo_source.fetch(["^RUT"], since=RECENT)  # cookie and crumb in hand
    yahoo_replay.fail("/v10/finance/quoteSummary/*", 401)

    with pytest.raises(MarketRateLimited) as raised:
        yahoo_source.fetch_funds(["IWM", "SPY"])

    plain(str(raised.value))
    assert "401" in raised.value.detail and "IWM" in raised.value.detail
    assert yahoo_source.backoff_until == yahoo_clock.now + FIRST_BACKOFF
    assert not any(r.symbols == ("SPY",) for r in yahoo_replay.requests)


def test_after_the_backoff_a_healthy_yahoo_gives_the_fund_round_a_new_crumb_and_every_fund(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    """yfinance keeps "Too Many Requests" as its crumb; the first refusal after the backoff makes it ask
    for a new one, and the round goes through."""
    yahoo_replay.fail("/v1/test/getcrumb", 429)
    with pytest.raises(MarketRateLimited):
        yahoo_source.fetch_funds(ETFS)
    yahoo_replay.clear_faults()
    assert yahoo_source.backoff_until is not None
    yahoo_clock.now = yahoo_source.backoff_until
    yahoo_replay.clear_requests()

    facts = yahoo_source.fetch_funds(ETFS)

    assert sorted(f.symbol for f in facts) == sorted(ETFS)
    assert yahoo_source.backoff_until is None
    sent = yahoo_replay.requests
    minted = [r for r in sent if r.path == "/v1/test/getcrumb" and r.status == 200]
    assert len(minted) == 1
    served = [r for r in sent if r.path.startswith("/v10/finance/quoteSummary/") and r.status == 200]
    assert {r.symbols[0] for r in served} == set(ETFS)
    assert len({r.query["crumb"] for r in served}) == 1


def test_error_pages_for_every_fund_raise_market_unavailable_saying_so(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    """An outage used to come back as an empty list, indistinguishable from funds without facts."""
    for fund in ("IWM", "SPY"):
        yahoo_replay.fail(fund, HTML)

    with pytest.raises(MarketUnavailable) as raised:
        yahoo_source.fetch_funds(["IWM", "SPY"])

    assert not isinstance(raised.value, MarketRateLimited)
    assert plain(str(raised.value)) == ERROR_PAGE
    assert "IWM" in raised.value.detail and "SPY" in raised.value.detail and "503" in raised.value.detail
    assert yahoo_source.backoff_until is None


# -- reasons a person can read -------------------------------------------------------------------------


@pytest.mark.parametrize("contact", ["first contact", "after first contact"])
@pytest.mark.parametrize(
    ("kind", "status"),
    [(HTML, 503), (HTML, 200), (BLANK, 200)],
    ids=["outage page 503", "outage page 200", "empty body"],
)
def test_error_pages_instead_of_charts_say_yahoo_answered_with_an_error_page(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, kind: str, status: int, contact: str
):
    if contact == "after first contact":
        yahoo_source.fetch(["^RUT", "IWM"], since=RECENT)  # timezones now come from yfinance's cache
    yahoo_replay.fail("/v8/finance/chart/*", kind, http_status=status)

    with pytest.raises(MarketUnavailable) as raised:
        yahoo_source.fetch(["^RUT", "IWM"], since=RECENT)

    assert not isinstance(raised.value, MarketRateLimited)
    assert plain(str(raised.value)) == ERROR_PAGE
    assert "^RUT" in raised.value.detail and "IWM" in raised.value.detail


def test_one_symbols_error_page_costs_that_symbol_alone_and_the_log_says_why(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, caplog: pytest.LogCaptureFixture
):
    yahoo_source.fetch(["^RUT", "^GSPC"], since=RECENT)
    yahoo_replay.fail("/v8/finance/chart/^GSPC", HTML)
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="market.yahoo"):
        data = yahoo_source.fetch(["^RUT", "^GSPC"], since=RECENT)

    assert list(data.closes.columns) == ["^RUT"]
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "market.yahoo"]
    assert warning.startswith("Yahoo Finance answered with an error page (^GSPC: ")


def test_a_404_for_every_symbol_says_yahoo_sent_no_prices_for_them(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.fail("/v8/finance/chart/*", 404)

    with pytest.raises(MarketUnavailable) as raised:
        yahoo_source.fetch(["^RUT", "^GSPC"], since=RECENT)

    assert plain(str(raised.value)) == "Yahoo Finance sent no prices for ^RUT, ^GSPC."
    assert "^RUT" in raised.value.detail and "^GSPC" in raised.value.detail


@pytest.mark.parametrize("contact", ["first contact", "after first contact"])
def test_yahoo_out_of_reach_is_said_in_plain_words_for_prices_and_funds(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, contact: str
):
    if contact == "after first contact":
        yahoo_source.fetch(["^RUT", "IWM"], since=RECENT)
    yahoo_replay.stop()  # a closed port, as when DNS, the network or Yahoo is down

    with pytest.raises(MarketUnavailable) as prices:
        yahoo_source.fetch(["^RUT", "IWM"], since=RECENT)
    with pytest.raises(MarketUnavailable) as funds:
        yahoo_source.fetch_funds(["IWM", "SPY"])

    for raised in (prices, funds):
        assert not isinstance(raised.value, MarketRateLimited)
        assert plain(str(raised.value)) == UNREACHABLE
        assert "IWM" in raised.value.detail and "curl: (7)" in raised.value.detail
    assert "^RUT" in prices.value.detail
    assert yahoo_source.backoff_until is None


def test_a_rate_limit_on_prices_reads_as_a_sentence_with_the_time_capgap_asks_again(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    yahoo_replay.fail("/v8/finance/chart/*", 429)

    with pytest.raises(MarketRateLimited) as raised:
        yahoo_source.fetch(["^RUT"], since=RECENT)

    assert (
        plain(str(raised.value)) == "Yahoo Finance is rate-limiting requests; trying again after 21:31 UTC."
    )
    assert "429" in raised.value.detail and "^RUT" in raised.value.detail
    assert json.dumps(raised.value.detail)  # plain text for the log and /stats
