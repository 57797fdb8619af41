"""market/service.py: refreshing the cache from a source and handing out snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from market.cache import MarketCache
from market.csv_source import CsvSource
from market.instruments import SYMBOLS
from market.model import FundFacts, MarketData, MarketRateLimited, MarketUnavailable, Quote
from market.service import OVERLAP, MarketService
from testing.world import AS_OF
from tests.conftest import FakeClock

# exchange-calendars trips pandas 3.1 deprecations (building XNYS; checking a minute is in range).
# pyproject.toml ignores the first only, and a `-W error` on the pytest command line outranks pyproject's
# filters; marks outrank both.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Series.values returning an ndarray that drops timezone:pandas.errors.Pandas4Warning"
    ),
    pytest.mark.filterwarnings(
        "ignore:DatetimeIndex.values returning an ndarray that drops timezone:pandas.errors.Pandas4Warning"
    ),
]

# The week of 16-19 Jan 2024 (Monday the 15th was MLK Day), real ^RUT and ^GSPC closes.
WEEK = {
    "^RUT": {
        "2024-01-12": 1950.97,
        "2024-01-16": 1927.30,
        "2024-01-17": 1913.17,
        "2024-01-18": 1923.65,
        "2024-01-19": 1944.39,
    },
    "^GSPC": {
        "2024-01-12": 4783.83,
        "2024-01-16": 4765.98,
        "2024-01-17": 4739.21,
        "2024-01-18": 4780.94,
        "2024-01-19": 4839.81,
    },
}


class ScriptedSource:
    """A market source at the edge: serves a hand-written table and records what it was asked.

    ``closes`` holds every bar the upstream has; ``fetch`` hands out the bars up to the clock's date (the
    last one is live while its session trades). ``failure``, when set, is raised instead, as a real source
    raises when Yahoo is down or rate-limits us.
    """

    name = "Scripted"

    def __init__(
        self, clock: FakeClock, closes: dict[str, dict[str, float]], funds: Sequence[FundFacts] = ()
    ) -> None:
        self.clock = clock
        self.closes = closes
        self.funds = list(funds)
        self.failure: MarketUnavailable | None = None
        self.fetches: list[tuple[tuple[str, ...], date | None]] = []
        self.fund_requests: list[tuple[str, ...]] = []

    def fetch(self, symbols: Sequence[str], since: date | None = None) -> MarketData:
        self.fetches.append((tuple(symbols), since))
        if self.failure is not None:
            raise self.failure
        now = self.clock()
        frame = pd.DataFrame(
            {s: pd.Series(self.closes[s], dtype="float64") for s in symbols if s in self.closes}
        )
        frame.index = pd.to_datetime(frame.index)
        frame = frame.sort_index()
        frame = frame[frame.index <= pd.Timestamp(now.date())]
        if since is not None:
            frame = frame[frame.index >= pd.Timestamp(since)]
        quotes = {s: Quote(s, float(frame[s].dropna().iloc[-1]), now) for s in frame.columns}
        return MarketData(closes=frame, quotes=quotes, source=self.name, fetched_at=now)

    def fetch_funds(self, symbols: Sequence[str]) -> list[FundFacts]:
        self.fund_requests.append(tuple(symbols))
        if self.failure is not None:
            raise self.failure
        return [f for f in self.funds if f.symbol in symbols]


@pytest.fixture
def source(clock: FakeClock) -> ScriptedSource:
    funds = [
        FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, None, "funds.csv"),
        FundFacts("SPY", date(2024, 1, 19), 0.000945, None, None, "funds.csv"),
    ]
    return ScriptedSource(clock, {s: dict(days) for s, days in WEEK.items()}, funds)


@pytest.fixture
def service(source: ScriptedSource, cache: MarketCache, clock: FakeClock) -> MarketService:
    # The conftest clock stands at 2024-01-18 21:30 UTC: that day's close has settled.
    return MarketService(source, cache, clock=clock, symbols=("^RUT", "^GSPC", "IWM", "SPY"))


# --- refresh_prices ---------------------------------------------------------------------------------


def test_refresh_prices_stores_the_closes_and_swaps_in_a_new_snapshot(
    service: MarketService, clock: FakeClock
) -> None:
    before = service.snapshot
    assert before.closes.empty
    assert service.snapshot is before  # held between refreshes, not re-read on every answer

    result = service.refresh_prices()
    assert result.ok
    assert not result.rate_limited
    assert result.rows == 8  # two indices, four sessions each up to the 18th
    assert result.detail == "8 closes from Scripted"

    after = service.snapshot
    assert after is not before
    assert after.latest_day == date(2024, 1, 18)
    assert after.series("^RUT").tolist() == [1950.97, 1927.30, 1913.17, 1923.65]
    assert after.source == "Scripted"
    assert after.fetched_at == clock.now
    assert after.last_error is None
    refresh = service.cache.last_refresh("prices")
    assert refresh is not None
    assert refresh["ok"] == 1
    assert refresh["detail"] == "8 closes"


def test_first_refresh_asks_for_all_history_then_only_from_a_week_before_the_newest_close(
    service: MarketService, source: ScriptedSource, clock: FakeClock
) -> None:
    service.refresh_prices()
    clock.advance(days=1)  # Friday 19 Jan, 21:30 UTC
    service.refresh_prices()
    assert timedelta(days=7) == OVERLAP
    # The scripted upstream has no IWM or SPY: those are asked for their whole history again, apart.
    assert source.fetches == [
        (("^RUT", "^GSPC", "IWM", "SPY"), None),  # one batched request for everything at first
        (("^RUT", "^GSPC"), date(2024, 1, 18) - OVERLAP),
        (("IWM", "SPY"), None),
    ]
    assert service.snapshot.latest_day == date(2024, 1, 19)


def test_a_corrected_close_inside_the_overlap_replaces_the_cached_one(
    service: MarketService, source: ScriptedSource, clock: FakeClock
) -> None:
    service.refresh_prices()
    source.closes["^RUT"]["2024-01-16"] = 1927.50  # upstream revised Tuesday's close
    clock.advance(days=1)
    service.refresh_prices()
    assert service.snapshot.closes.loc["2024-01-16", "^RUT"] == 1927.50


def test_a_live_bar_during_the_session_is_kept_as_a_quote_not_a_close(
    service: MarketService, clock: FakeClock
) -> None:
    clock.now = datetime(2024, 1, 19, 17, 0, tzinfo=UTC)  # Friday, noon in New York
    result = service.refresh_prices()
    snapshot = service.snapshot
    assert result.rows == 8
    assert snapshot.latest_day == date(2024, 1, 18)
    assert snapshot.quotes["^RUT"].price == 1944.39
    assert snapshot.quotes["^RUT"].time == clock.now


def test_a_failing_source_is_recorded_and_the_cached_closes_stay(
    service: MarketService, source: ScriptedSource, clock: FakeClock
) -> None:
    service.refresh_prices()
    good_at = clock.now
    good_closes = service.snapshot.closes.copy()

    clock.advance(days=1)
    source.failure = MarketUnavailable("Yahoo Finance did not answer")
    result = service.refresh_prices()

    assert not result.ok
    assert not result.rate_limited
    assert result.rows == 0
    assert result.detail == "Yahoo Finance did not answer"
    snapshot = service.snapshot
    pd.testing.assert_frame_equal(snapshot.closes, good_closes)
    assert snapshot.last_error == "Yahoo Finance did not answer"
    assert (snapshot.source, snapshot.fetched_at) == ("Scripted", good_at)  # still the last good refresh
    failed = service.cache.last_refresh("prices", ok=False)
    assert failed is not None
    assert (failed["at"], failed["source"], failed["detail"]) == (
        clock.now.isoformat(),
        "Scripted",
        "Yahoo Finance did not answer",
    )


def test_a_rate_limited_source_says_so(service: MarketService, source: ScriptedSource) -> None:
    source.failure = MarketRateLimited("Yahoo asked us to slow down")
    result = service.refresh_prices()
    assert not result.ok
    assert result.rate_limited
    assert service.snapshot.closes.empty
    assert service.snapshot.last_error == "Yahoo asked us to slow down"


def test_a_good_refresh_after_a_failure_clears_the_error(
    service: MarketService, source: ScriptedSource, clock: FakeClock
) -> None:
    source.failure = MarketUnavailable("down")
    service.refresh_prices()
    assert service.snapshot.last_error == "down"
    source.failure = None
    clock.advance(minutes=5)
    assert service.refresh_prices().ok
    assert service.snapshot.last_error is None
    assert service.snapshot.latest_day == date(2024, 1, 18)


# --- freshness and ensure_loaded --------------------------------------------------------------------


def test_is_fresh_follows_the_nyse_calendar(service: MarketService, clock: FakeClock) -> None:
    assert not service.is_fresh()  # nothing cached
    service.refresh_prices()
    assert service.is_fresh()
    clock.now = datetime(2024, 1, 19, 21, 19, tzinfo=UTC)  # Friday's close has not settled yet
    assert service.is_fresh()
    clock.now = datetime(2024, 1, 19, 21, 20, tzinfo=UTC)
    assert not service.is_fresh()


def test_ensure_loaded_fills_an_empty_cache_with_prices_and_funds(
    service: MarketService, source: ScriptedSource
) -> None:
    service.ensure_loaded()
    assert len(source.fetches) == 1
    assert len(source.fund_requests) == 1
    snapshot = service.snapshot
    assert snapshot.latest_day == date(2024, 1, 18)
    assert snapshot.fund("IWM") == FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, None, "funds.csv")


def test_ensure_loaded_leaves_a_fresh_cache_alone(service: MarketService, source: ScriptedSource) -> None:
    service.ensure_loaded()
    service.ensure_loaded()
    assert len(source.fetches) == 1
    assert len(source.fund_requests) == 1


def test_ensure_loaded_refreshes_a_stale_cache(
    service: MarketService, source: ScriptedSource, clock: FakeClock
) -> None:
    service.ensure_loaded()
    clock.advance(days=1)  # Friday's close has settled
    service.ensure_loaded()
    assert [since for _, since in source.fetches] == [None, date(2024, 1, 11), None]  # None: IWM, SPY
    assert len(source.fund_requests) == 1  # fund facts were already there
    assert service.snapshot.latest_day == date(2024, 1, 19)


def test_ensure_loaded_with_the_source_down_keeps_what_is_cached(
    service: MarketService, source: ScriptedSource, clock: FakeClock
) -> None:
    service.ensure_loaded()
    clock.advance(days=1)
    source.failure = MarketUnavailable("down")
    service.ensure_loaded()  # does not raise
    assert service.snapshot.latest_day == date(2024, 1, 18)
    assert service.snapshot.last_error == "down"


def test_ensure_loaded_on_an_empty_cache_with_the_source_down_answers_empty(
    service: MarketService, source: ScriptedSource
) -> None:
    source.failure = MarketUnavailable("down")
    service.ensure_loaded()
    assert service.snapshot.closes.empty
    assert service.snapshot.last_error == "down"
    assert service.cache.last_refresh("funds", ok=False) is not None


# --- refresh_funds ----------------------------------------------------------------------------------


def test_refresh_funds_asks_only_for_the_followed_etfs_and_stores_them(
    service: MarketService, source: ScriptedSource, clock: FakeClock
) -> None:
    before = service.snapshot
    result = service.refresh_funds()
    assert result.ok
    assert result.rows == 2
    assert result.detail == "2 fund snapshots"
    assert source.fund_requests == [("IWM", "SPY")]  # the indices are no funds; VOO etc. are not followed
    snapshot = service.snapshot
    assert snapshot is not before
    assert snapshot.fund("SPY") == FundFacts("SPY", date(2024, 1, 19), 0.000945, None, None, "funds.csv")
    refresh = service.cache.last_refresh("funds")
    assert refresh is not None
    assert refresh["ok"] == 1
    assert refresh["at"] == clock.now.isoformat()


def test_refresh_funds_failure_is_recorded_and_stored_facts_stay(
    service: MarketService, source: ScriptedSource
) -> None:
    service.refresh_funds()
    source.failure = MarketRateLimited("slow down")
    result = service.refresh_funds()
    assert not result.ok
    assert result.rate_limited
    assert result.detail == "slow down"
    assert service.cache.last_refresh("funds", ok=False)["detail"] == "slow down"  # type: ignore[index]
    assert service.cache.snapshot().fund("IWM") is not None


# --- on the real history ----------------------------------------------------------------------------


def test_refresh_from_the_real_history_as_of_a_date(shared_data: Path, cache: MarketCache) -> None:
    source = CsvSource(shared_data, as_of=AS_OF)
    service = MarketService(source, cache, clock=source.now)
    service.ensure_loaded()
    snapshot = service.snapshot
    assert snapshot.latest_day == AS_OF
    assert set(snapshot.closes.columns) == set(SYMBOLS)
    assert snapshot.closes.loc["2024-01-18", "^RUT"] == 1923.650024
    assert snapshot.closes.loc["2014-01-17", "^GSPC"] == 1838.699951
    assert snapshot.source == source.name
    assert snapshot.fetched_at == source.now()
    assert service.is_fresh()
    # funds.csv is dated the next day: expense ratios stand in, P/B does not leak back.
    iwm = snapshot.fund("IWM")
    assert iwm is not None
    assert iwm.expense_ratio == 0.0019
    assert iwm.price_to_book is None
