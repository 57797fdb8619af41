"""YahooSource against the Yahoo replay: yfinance's real request and parsing code, a fake Yahoo."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from market.model import MarketRateLimited, MarketUnavailable
from market.yahoo import FIRST_BACKOFF, LONGEST_BACKOFF, YahooSource
from testing import yahoo as harness
from testing.world import SHARED_DATA
from testing.yahoo import EMPTY, ManualClock, ReplayRequest, ReplaySession, YahooReplay

# The harness fixtures, bound by assignment so this module runs with or without tests/conftest.py
# re-exporting them (an import by name would read as a redefinition wherever a test asks for one).
yahoo_replay = harness.yahoo_replay
yahoo_clock = harness.yahoo_clock
yahoo_source = harness.yahoo_source

ALL_SYMBOLS = ("^RUT", "^GSPC", "IWM", "VTWO", "SPY", "VOO", "IVV")
ETFS = ("IWM", "VTWO", "SPY", "VOO", "IVV")


def csv_closes(symbol: str) -> pd.Series:
    """The close column of a history file, read with the csv module rather than the replay's loader."""
    days, values = [], []
    with (SHARED_DATA / f"{symbol.lstrip('^')}_daily.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["close"]:
                days.append(pd.Timestamp(row["date"]))
                values.append(float(row["close"]))
    return pd.Series(values, index=pd.DatetimeIndex(days), name=symbol)


def charts(requests: list[ReplayRequest]) -> list[ReplayRequest]:
    return [r for r in requests if r.path.startswith("/v8/finance/chart/")]


@pytest.fixture(autouse=True)
def _every_request_was_understood(yahoo_replay: YahooReplay):
    """A yfinance request the replay does not imitate, or a replay bug, fails the test that caused it."""
    yield
    assert yahoo_replay.unknown == []
    assert yahoo_replay.errors == []


# -- prices ------------------------------------------------------------------------------------------


def test_fetch_returns_every_close_yahoo_served_for_all_seven_symbols(yahoo_source: YahooSource):
    data = yahoo_source.fetch(ALL_SYMBOLS)

    assert list(data.closes.columns) == list(ALL_SYMBOLS)
    assert data.source == "Yahoo Finance"
    assert isinstance(data.closes.index, pd.DatetimeIndex)
    assert data.closes.index.tz is None
    assert data.closes.index.is_monotonic_increasing
    assert data.closes.index.is_unique
    assert (data.closes.index == data.closes.index.normalize()).all()
    assert (data.closes.dtypes == "float64").all()
    for symbol in ALL_SYMBOLS:
        expected = csv_closes(symbol)
        pd.testing.assert_series_equal(
            data.closes[symbol].dropna(), expected, check_names=False, check_freq=False
        )
    # Spot checks from shared/data/SOURCES.md.
    assert data.closes.at[pd.Timestamp("2023-12-29"), "^RUT"] == pytest.approx(2027.07)
    assert data.closes.at[pd.Timestamp("2013-12-31"), "^GSPC"] == pytest.approx(1848.36)


def test_fetch_takes_the_unadjusted_close_not_the_dividend_adjusted_one(yahoo_source: YahooSource):
    data = yahoo_source.fetch(["SPY"], since=date(2024, 9, 12))

    assert data.closes.at[pd.Timestamp("2024-09-12"), "SPY"] == pytest.approx(559.090027)


def test_quotes_are_each_symbols_last_close_with_its_time_and_previous_close(yahoo_source: YahooSource):
    data = yahoo_source.fetch(["^RUT", "IWM", "IVV"], since=date(2023, 1, 1))

    rut, iwm, ivv = data.quotes["^RUT"], data.quotes["IWM"], data.quotes["IVV"]
    assert (rut.price, rut.previous_close) == (pytest.approx(2525.300049), pytest.approx(2585.570068))
    assert rut.time == datetime(2026, 3, 6, 21, 0, tzinfo=UTC)  # 16:00 New York, winter time
    assert (iwm.price, iwm.previous_close) == (pytest.approx(211.610001), pytest.approx(208.919998))
    assert iwm.time == datetime(2024, 9, 12, 20, 0, tzinfo=UTC)  # 16:00 New York, summer time
    assert ivv.time.date() == date(2023, 4, 14)  # IVV's daily history ends there
    assert data.fetched_at == datetime(2026, 3, 6, 21, 30, tzinfo=UTC)


def test_since_limits_the_request_and_the_frame_to_that_date_onwards(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    since = date(2024, 9, 1)  # a Sunday, before Labor Day
    data = yahoo_source.fetch(["^RUT", "IWM"], since=since)

    assert data.closes.index[0] == pd.Timestamp("2024-09-03")
    assert data.closes.index[-1] == pd.Timestamp("2026-03-06")
    assert data.closes["IWM"].last_valid_index() == pd.Timestamp("2024-09-12")
    history = [r for r in charts(yahoo_replay.requests) if "period1" in r.query]
    midnight_new_york = int(datetime(2024, 9, 1, 4, 0, tzinfo=UTC).timestamp())
    assert {int(r.query["period1"]) for r in history} == {midnight_new_york}


def test_advancing_the_replayed_market_brings_new_closes_on_the_next_refresh(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.as_of = date(2024, 9, 10)
    before = yahoo_source.fetch(["IWM"], since=date(2024, 9, 1))
    yahoo_replay.as_of = date(2024, 9, 12)
    after = yahoo_source.fetch(["IWM"], since=date(2024, 9, 1))

    assert before.closes.index[-1] == pd.Timestamp("2024-09-10")
    assert after.closes.index[-1] == pd.Timestamp("2024-09-12")
    assert len(after.closes) == len(before.closes) + 2  # 11 and 12 September
    pd.testing.assert_frame_equal(after.closes.iloc[:-2], before.closes)


def test_a_live_price_during_the_session_is_the_latest_close_and_quote(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    now = datetime(2024, 9, 13, 15, 0, tzinfo=UTC)  # 11:00 in New York
    yahoo_clock.now = now
    yahoo_replay.as_of = now
    yahoo_replay.set_live("IWM", 212.5, now - timedelta(minutes=15))

    data = yahoo_source.fetch(["IWM"], since=date(2024, 9, 9))

    assert data.closes.index[-1] == pd.Timestamp("2024-09-13")
    assert data.closes["IWM"].iloc[-1] == pytest.approx(212.5)
    quote = data.quotes["IWM"]
    assert quote.price == pytest.approx(212.5)
    assert quote.previous_close == pytest.approx(211.610001)
    assert quote.time == now  # a daily bar has no trade time; never later than the fetch


def test_an_unknown_symbol_is_unavailable_while_the_others_arrive(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    data = yahoo_source.fetch(["^RUT", "NOSUCH", "SPY"], since=date(2024, 9, 1))

    assert list(data.closes.columns) == ["^RUT", "SPY"]
    assert set(data.quotes) == {"^RUT", "SPY"}
    assert any(r.symbols == ("NOSUCH",) and r.status == 404 for r in yahoo_replay.requests)


def test_a_symbol_yahoo_answers_404_for_is_unavailable_while_the_others_arrive(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.fail("VTWO", 404)

    data = yahoo_source.fetch(ALL_SYMBOLS, since=date(2023, 4, 1))

    assert "VTWO" not in data.closes.columns
    assert "VTWO" not in data.quotes
    assert set(data.closes.columns) == set(ALL_SYMBOLS) - {"VTWO"}


def test_an_empty_chart_leaves_that_symbol_unavailable_never_zero(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.fail("/v8/finance/chart/IWM", EMPTY)

    data = yahoo_source.fetch(["^RUT", "IWM"], since=date(2024, 9, 1))

    assert list(data.closes.columns) == ["^RUT"]
    assert "IWM" not in data.quotes
    assert not (data.closes == 0).any().any()


def test_a_symbol_with_no_data_in_range_is_left_out(yahoo_source: YahooSource):
    data = yahoo_source.fetch(["^RUT", "VTWO"], since=date(2025, 1, 1))  # VTWO's file ends 2023-04-14

    assert list(data.closes.columns) == ["^RUT"]


def test_nothing_at_all_coming_back_raises_market_unavailable_with_a_reason(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    """The reason is a sentence for a person; yfinance's own words ("no price data found", which used
    to be in the reason a chat saw) belong in the detail."""
    yahoo_replay.fail("/v8/finance/chart/*", EMPTY)

    with pytest.raises(MarketUnavailable) as raised:
        yahoo_source.fetch(["^RUT", "IWM"], since=date(2024, 9, 1))
    assert not isinstance(raised.value, MarketRateLimited)
    assert str(raised.value) == "Yahoo Finance sent no prices for ^RUT, IWM."
    assert "no price data found" in raised.value.detail
    assert "^RUT" in raised.value.detail and "IWM" in raised.value.detail


def test_no_symbols_asks_yahoo_nothing(yahoo_source: YahooSource, yahoo_replay: YahooReplay):
    data = yahoo_source.fetch([])

    assert data.closes.empty
    assert data.quotes == {}
    assert yahoo_replay.requests == []


# -- rate limits -------------------------------------------------------------------------------------


def test_a_429_raises_rate_limited_and_backs_off_without_asking_again(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    """The reason says when capgap will ask again; the status and the symbol are in the detail (the
    reason used to quote HTTP's "Too Many Requests" at the user)."""
    yahoo_replay.fail("SPY", 429)

    with pytest.raises(MarketRateLimited) as raised:
        yahoo_source.fetch(["^RUT", "SPY"], since=date(2024, 9, 1))
    assert str(raised.value) == "Yahoo Finance is rate-limiting requests; trying again after 21:31 UTC."
    assert "429" in raised.value.detail and "SPY" in raised.value.detail
    assert yahoo_source.backoff_until == yahoo_clock.now + FIRST_BACKOFF

    sent = len(yahoo_replay.requests)
    yahoo_clock.advance(FIRST_BACKOFF - timedelta(seconds=1))
    with pytest.raises(MarketRateLimited, match="rate-limiting requests; trying again after 21:31 UTC"):
        yahoo_source.fetch(["^RUT", "SPY"], since=date(2024, 9, 1))
    with pytest.raises(MarketRateLimited):
        yahoo_source.fetch_funds(["SPY"])
    assert len(yahoo_replay.requests) == sent


def test_a_429_is_seen_even_with_logging_quieter_than_errors(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    """CAPGAP_LOG_LEVEL=CRITICAL must not blind the source to Yahoo's rate limit."""
    import logging

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yahoo_replay.fail("SPY", 429)
        with pytest.raises(MarketRateLimited):
            yahoo_source.fetch(["^RUT", "SPY"], since=date(2024, 9, 1))
    finally:
        root.setLevel(before)
    assert yahoo_source.backoff_until == yahoo_clock.now + FIRST_BACKOFF
    assert logging.getLogger("yfinance").propagate


def test_backoff_doubles_while_yahoo_keeps_refusing_and_resets_after_a_success(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    yahoo_replay.fail("/v8/finance/chart/*", 429)
    waits = []
    for _ in range(7):
        with pytest.raises(MarketRateLimited):
            yahoo_source.fetch(["^RUT"], since=date(2026, 3, 1))
        assert yahoo_source.backoff_until is not None
        waits.append(yahoo_source.backoff_until - yahoo_clock.now)
        yahoo_clock.now = yahoo_source.backoff_until

    assert waits == [timedelta(seconds=s) for s in (60, 120, 240, 480, 960, 1800, 1800)]
    assert waits[-1] == LONGEST_BACKOFF

    yahoo_replay.clear_faults()
    assert list(yahoo_source.fetch(["^RUT"], since=date(2026, 3, 1)).closes.columns) == ["^RUT"]
    assert yahoo_source.backoff_until is None

    yahoo_replay.fail("/v8/finance/chart/*", 429)
    with pytest.raises(MarketRateLimited):
        yahoo_source.fetch(["^RUT"], since=date(2026, 3, 1))
    assert yahoo_source.backoff_until == yahoo_clock.now + FIRST_BACKOFF


def test_a_rate_limited_crumb_alone_does_not_count_as_a_rate_limit(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.fail("/v1/test/getcrumb", 429)

    data = yahoo_source.fetch(["^RUT"], since=date(2026, 3, 1))

    assert list(data.closes.columns) == ["^RUT"]
    assert yahoo_source.backoff_until is None


# -- upstream request budget -------------------------------------------------------------------------


def test_a_refresh_costs_one_chart_request_per_symbol_whatever_the_history_length(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_source.fetch(ALL_SYMBOLS, since=date(2026, 3, 1))  # first contact: cookie, crumb, timezones
    first = yahoo_replay.requests
    assert Counter((r.host, r.path) for r in first if not r.path.startswith("/v8/")) == {
        ("fc.yahoo.com", "/"): 1,
        ("query1.finance.yahoo.com", "/v1/test/getcrumb"): 1,
    }
    assert Counter(r.symbols[0] for r in charts(first)) == dict.fromkeys(ALL_SYMBOLS, 2)

    for since in (None, date(2024, 1, 1), date(2026, 3, 6)):
        yahoo_replay.clear_requests()
        yahoo_source.fetch(ALL_SYMBOLS, since=since)
        sent = yahoo_replay.requests
        assert len(sent) == len(ALL_SYMBOLS)
        assert sorted(r.symbols[0] for r in charts(sent)) == sorted(ALL_SYMBOLS)


def test_fund_facts_cost_a_fixed_handful_of_requests_per_fund(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_source.fetch(["IWM"], since=date(2024, 9, 1))  # cookie and crumb are not the funds' cost
    for _ in range(2):
        yahoo_replay.clear_requests()
        yahoo_source.fetch_funds(ALL_SYMBOLS)
        sent = yahoo_replay.requests
        assert all(r.symbols and r.symbols[0] in ETFS for r in sent)  # indices are not asked about
        per_fund = Counter(r.symbols[0] for r in sent)
        assert set(per_fund) == set(ETFS)
        assert all(3 <= n <= 4 for n in per_fund.values())


# -- fund facts --------------------------------------------------------------------------------------


def test_fund_facts_carry_funds_csv_expense_ratios_as_fractions_and_assets_in_usd(
    yahoo_source: YahooSource,
):
    facts = {f.symbol: f for f in yahoo_source.fetch_funds(ETFS)}

    assert set(facts) == set(ETFS)
    assert facts["IWM"].expense_ratio == pytest.approx(0.0019)
    assert facts["SPY"].expense_ratio == pytest.approx(0.000945)
    assert facts["VOO"].expense_ratio == pytest.approx(0.0003)
    assert facts["IWM"].total_assets == pytest.approx(62e9)
    assert facts["VTWO"].total_assets is None  # funds.csv does not know it; None, never 0
    assert all(f.price_to_book is None for f in facts.values())  # nobody set one
    assert all(f.as_of == date(2026, 3, 6) and f.source == "Yahoo Finance" for f in facts.values())


def test_price_to_book_is_inverted_from_yahoos_book_to_price(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.set_price_to_book("IWM", 1.9)  # synthetic: small caps cheap on book
    yahoo_replay.set_price_to_book("SPY", 4.6)  # synthetic: large caps dear on book

    facts = {f.symbol: f for f in yahoo_source.fetch_funds(["IWM", "SPY"])}

    assert facts["IWM"].price_to_book == pytest.approx(1.9)
    assert facts["SPY"].price_to_book == pytest.approx(4.6)


def test_price_to_earnings_is_inverted_from_yahoos_earnings_to_price(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    """Yahoo serves the holdings' P/E as earnings / price, like P/B (yfinance's funds_data shows the raw
    ``priceToEarnings`` under "Price/Earnings"): 0.0625 is 16x, 0.04 is 25x."""
    yahoo_replay.set_fund_facts("IWM", earnings_to_price=0.0625)  # synthetic
    yahoo_replay.set_fund_facts("SPY", earnings_to_price=0.04)  # synthetic
    yahoo_replay.set_price_to_book("SPY", 4.6)

    facts = {f.symbol: f for f in yahoo_source.fetch_funds(["IWM", "SPY"])}

    assert facts["IWM"].price_to_earnings == pytest.approx(16.0)
    assert facts["SPY"].price_to_earnings == pytest.approx(25.0)
    assert facts["SPY"].price_to_book == pytest.approx(4.6)


@pytest.mark.parametrize(
    "earnings_to_price",
    [1.0, 0.001, 0.0, -0.05, math.inf, math.nan],
    ids=["p/e 1", "p/e 1000", "zero", "negative", "infinite", "nan"],
)
def test_an_implausible_price_to_earnings_is_none(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, earnings_to_price: float
):
    yahoo_replay.set_fund_facts("IWM", earnings_to_price=earnings_to_price)

    (facts,) = yahoo_source.fetch_funds(["IWM"])

    assert facts.price_to_earnings is None
    assert facts.expense_ratio is not None  # the rest of the fund's facts stand


def test_a_fund_without_holdings_ratios_has_neither_multiple(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    (facts,) = yahoo_source.fetch_funds(["IWM"])

    assert (facts.price_to_book, facts.price_to_earnings) == (None, None)


@pytest.mark.parametrize(
    "book_to_price",
    [10.0, 0.0001, 0.0, -0.5, math.inf, math.nan],
    ids=["p/b 0.1", "p/b 10000", "zero", "negative", "infinite", "nan"],
)
def test_an_implausible_price_to_book_is_none(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, book_to_price: float
):
    yahoo_replay.set_fund_facts("IWM", book_to_price=book_to_price)

    (facts,) = yahoo_source.fetch_funds(["IWM"])

    assert facts.price_to_book is None
    assert facts.expense_ratio == pytest.approx(0.0019)


def test_the_expense_ratio_falls_back_to_the_quotes_percent_and_converts_it(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.set_fund_facts("VTWO", expense_ratio=None, net_expense_ratio=0.10)

    (facts,) = yahoo_source.fetch_funds(["VTWO"])

    assert facts.expense_ratio == pytest.approx(0.0010)


def test_the_fund_profiles_fraction_wins_over_the_quotes_percent(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.set_fund_facts("IWM", expense_ratio=0.0019, net_expense_ratio=0.20)

    (facts,) = yahoo_source.fetch_funds(["IWM"])

    assert facts.expense_ratio == pytest.approx(0.0019)


def test_a_percent_where_a_fraction_belongs_is_not_taken_as_a_19_percent_fee(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.set_fund_facts("IWM", expense_ratio=0.19, net_expense_ratio=None)

    (facts,) = yahoo_source.fetch_funds(["IWM"])

    assert facts.expense_ratio is None


def test_missing_fund_fields_are_none_not_zero(yahoo_source: YahooSource, yahoo_replay: YahooReplay):
    yahoo_replay.set_fund_facts("IWM", expense_ratio=None, net_expense_ratio=None, total_assets=None)
    yahoo_replay.set_price_to_book("IWM", 1.8)

    (facts,) = yahoo_source.fetch_funds(["IWM"])

    assert (facts.expense_ratio, facts.total_assets) == (None, None)
    assert facts.price_to_book == pytest.approx(1.8)


def test_a_fund_yahoo_knows_nothing_about_is_left_out(yahoo_source: YahooSource, yahoo_replay: YahooReplay):
    yahoo_replay.set_fund_facts("VOO", expense_ratio=None, net_expense_ratio=None, total_assets=None)

    facts = yahoo_source.fetch_funds(["IWM", "VOO"])

    assert [f.symbol for f in facts] == ["IWM"]


def test_an_empty_fund_profile_still_yields_the_quotes_expense_ratio(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    yahoo_replay.fail("/v10/finance/quoteSummary/SPY", EMPTY)

    (facts,) = yahoo_source.fetch_funds(["SPY"])

    assert facts.expense_ratio == pytest.approx(0.000945)
    assert (facts.total_assets, facts.price_to_book) == (None, None)


def test_one_failing_fund_does_not_sink_the_others(yahoo_source: YahooSource, yahoo_replay: YahooReplay):
    yahoo_replay.fail("VTWO", 404)

    facts = yahoo_source.fetch_funds(["IWM", "VTWO", "SPY", "NOSUCH"])

    assert [f.symbol for f in facts] == ["IWM", "SPY"]


def test_a_429_on_fund_facts_raises_rate_limited_and_backs_off(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay, yahoo_clock: ManualClock
):
    yahoo_replay.fail("/v10/finance/quoteSummary/*", 429)

    with pytest.raises(MarketRateLimited):
        yahoo_source.fetch_funds(["IWM", "SPY"])

    assert yahoo_source.backoff_until == yahoo_clock.now + FIRST_BACKOFF
    assert not any(r.symbols == ("SPY",) for r in yahoo_replay.requests)  # the round stopped at IWM


# -- the module and the harness ----------------------------------------------------------------------


def test_yfinance_keeps_its_cookie_and_timezone_caches_in_the_tests_tmp_path(
    yahoo_source: YahooSource, tmp_path: Path
):
    yahoo_source.fetch(["^RUT"], since=date(2026, 3, 1))

    assert {p.name for p in (tmp_path / "yfinance-cache").glob("*.db")} >= {"cookies.db", "tkr-tz.db"}


def test_importing_market_yahoo_does_not_import_yfinance():
    code = "import sys, market.yahoo; print('yfinance' in sys.modules, 'curl_cffi' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )

    assert result.stdout.split() == ["False", "False"]


def test_replay_session_refuses_anything_but_yahoo(yahoo_replay: YahooReplay):
    session = ReplaySession(yahoo_replay)
    try:
        with pytest.raises(ValueError, match="only talks to"):
            session.get("https://example.com/")
        assert session.to_replay("https://query2.finance.yahoo.com/v8/finance/chart/IWM?range=1d") == (
            f"http://query2.finance.yahoo.com:{yahoo_replay.port}/v8/finance/chart/IWM?range=1d"
        )
    finally:
        session.close()


def test_the_gap_from_yahoos_payloads_is_refused_when_the_twins_disagree_and_kept_where_they_agree(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
):
    """quoteSummary payloads for the four funds of the two pairs, as Yahoo shapes them (book/price and
    earnings/price of the holdings; SYNTHETIC values): IWM's P/B 1.80 against VTWO's 2.40 (33% apart) makes
    the P/B reading contradicted, while the P/E twins agree and give a gap of their own."""
    from market import valuation

    pb = {"IWM": 1.80, "VTWO": 2.40, "IVV": 4.50, "VOO": 4.48}
    pe = {"IWM": 14.0, "VTWO": 14.2, "IVV": 23.0, "VOO": 23.2}
    for symbol in pb:
        yahoo_replay.set_fund_facts(symbol, earnings_to_price=1 / pe[symbol])
        yahoo_replay.set_price_to_book(symbol, pb[symbol])

    facts = yahoo_source.fetch_funds(list(pb))
    funds = pd.DataFrame(
        [(f.symbol, f.as_of, f.price_to_book, f.price_to_earnings) for f in facts],
        columns=["symbol", "as_of", "price_to_book", "price_to_earnings"],
    )

    (book,) = valuation.readings(funds, "pb")
    assert book.gap is None and book.problem is not None and "IWM" in book.problem and "VTWO" in book.problem
    (earnings,) = valuation.readings(funds, "pe")
    expected = ((1 - pe["IWM"] / pe["IVV"]) + (1 - pe["VTWO"] / pe["VOO"])) / 2
    assert earnings.problem is None and earnings.checked
    assert earnings.gap == pytest.approx(expected, abs=1e-9)
