"""The instrument table: every instrument is known by its names, read from CSV, served by the Yahoo replay
through the real yfinance, fetched within a sensible request budget, and usable in a rule."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from alerts.rules import parse_rule
from market.cache import MarketCache
from market.csv_source import CsvSource
from market.instruments import (
    ALL,
    FUND_FACT_ETFS,
    HEADLINE,
    INTRADAY_SYMBOLS,
    LARGE_CAP_ETFS,
    PROXY_ETF,
    SMALL_CAP_ETFS,
    SYMBOLS,
    benchmark,
    resolve,
)
from market.plausibility import peers
from market.service import MarketService
from market.yahoo import YahooSource
from testing import yahoo as harness
from testing.alerts_oracle import above_fires
from testing.world import SHARED_DATA
from testing.yahoo import ManualClock, ReplaySession, YahooReplay
from tests.test_cli import capgap

# The replay's fixtures, bound by assignment as tests/test_yahoo.py does.
yahoo_replay = harness.yahoo_replay
yahoo_clock = harness.yahoo_clock
yahoo_source = harness.yahoo_source

ADDED = ("^SP600", "^MID", "IJR", "IJH", "MDY", "RSP", "IWB", "IWN")


def csv_column(stem: str, column: str) -> dict[date, float]:
    with (SHARED_DATA / f"{stem}_daily.csv").open(newline="") as handle:
        return {date.fromisoformat(r["date"]): float(r[column]) for r in csv.DictReader(handle) if r[column]}


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("sp600", "^SP600"),
        ("SP600", "^SP600"),
        ("^sp600", "^SP600"),
        ("ijr", "IJR"),
        ("mid", "^MID"),
        ("sp400", "^MID"),
        ("ijh", "IJH"),
        ("mdy", "MDY"),
        ("rsp", "RSP"),
        ("iwb", "IWB"),
        ("iwn", "IWN"),
        ("russell", "^RUT"),
        ("s&p", "^GSPC"),
    ],
)
def test_every_instrument_is_known_by_its_ticker_and_aliases_in_any_case(name: str, symbol: str) -> None:
    found = resolve(name)
    assert found is not None and found.symbol == symbol


def test_the_table_is_the_one_list_every_part_reads() -> None:
    assert set(ADDED) <= set(SYMBOLS)
    assert len(set(SYMBOLS)) == len(SYMBOLS)
    # The headline pair, /etf's funds and the gap's twins are what they were.
    assert [i.symbol for i in HEADLINE] == ["^RUT", "^GSPC"]
    assert [i.symbol for i in FUND_FACT_ETFS] == ["IWM", "VTWO", "SPY", "VOO", "IVV"]
    assert (SMALL_CAP_ETFS, LARGE_CAP_ETFS) == (("IWM", "VTWO"), ("SPY", "VOO", "IVV"))
    assert PROXY_ETF == {"^RUT": "IWM", "^GSPC": "SPY", "^SP600": "IJR", "^MID": "IJH"}
    assert set(INTRADAY_SYMBOLS) == {"^RUT", "^GSPC", "IWM", "VTWO", "SPY", "VOO", "IVV"}
    # Named alone, an index is compared with the S&P 500 and a fund with SPY.
    assert benchmark(resolve("sp600")).symbol == "^GSPC"  # type: ignore[arg-type]
    assert benchmark(resolve("rsp")).symbol == "SPY"  # type: ignore[arg-type]


def test_peers_are_the_instruments_that_stand_for_the_same_index() -> None:
    assert peers("^SP600") == ("IJR",)
    assert peers("IJH") == ("^MID", "MDY")
    assert peers("RSP") == ()  # equal weight: no peer of the S&P 500
    assert peers("IWN") == ()


def test_every_instrument_has_a_history_file_the_csv_source_reads_whole() -> None:
    data = CsvSource(SHARED_DATA).fetch(SYMBOLS)
    assert set(data.closes.columns) == set(SYMBOLS)
    for instrument in ALL:
        expected = csv_column(instrument.file_stem, "close")
        series = data.closes[instrument.symbol].dropna()
        assert len(series) == len(expected), instrument.symbol
        last = max(expected)
        assert series.index[-1].date() == last and series.iloc[-1] == expected[last]
    # Files end on different days; the source reports each one's own.
    assert data.quotes["^SP600"].time.date() == date(2024, 3, 26)
    assert data.quotes["IJR"].time.date() == date(2026, 5, 1)
    assert data.quotes["^RUT"].time.date() == date(2026, 3, 6)


def test_the_yahoo_replay_serves_the_new_instruments_to_the_real_yfinance(
    yahoo_source: YahooSource, yahoo_replay: YahooReplay
) -> None:
    data = yahoo_source.fetch(ADDED, since=date(2024, 1, 2))
    assert set(data.closes.columns) == set(ADDED)
    for symbol in ADDED:
        stem = symbol.lstrip("^")
        expected = {
            d: v for d, v in csv_column(stem, "close").items() if date(2024, 1, 2) <= d <= date(2026, 3, 6)
        }
        series = data.closes[symbol].dropna()
        assert {ts.date(): value for ts, value in series.items()} == pytest.approx(expected, rel=1e-9)
    # The funds' "Adj Close" arrives beside their closes; indices have none of their own.
    assert data.adjusted is not None
    assert set(data.adjusted.columns) == {s for s in ADDED if not s.startswith("^")}
    ijr = csv_column("IJR", "adj_close")
    assert float(data.adjusted.loc["2024-01-18", "IJR"]) == pytest.approx(ijr[date(2024, 1, 18)], rel=1e-9)
    assert yahoo_replay.unknown == [] and yahoo_replay.errors == []


def test_a_refresh_in_the_session_asks_only_the_intraday_instruments_and_after_the_close_all(
    tmp_path: Path, yahoo_replay: YahooReplay, cache: MarketCache
) -> None:
    clock = ManualClock(datetime(2026, 3, 5, 21, 30, tzinfo=UTC))  # after the 5 Mar close
    session = ReplaySession(yahoo_replay)
    yahoo_replay.as_of = date(2026, 3, 5)
    service = MarketService(YahooSource(session=session, clock=clock), cache, clock=clock)
    assert service.refresh_prices().ok
    assert set(cache.latest_days()) == set(SYMBOLS)
    # The funds' adjusted closes reach the snapshot through yfinance's "Adj Close": the same returns.
    ijr = csv_column("IJR", "adj_close")
    stored = service.snapshot.adjusted_series("IJR")
    assert float(stored.loc["2026-03-05"] / stored.loc["2016-03-04"]) == pytest.approx(
        ijr[date(2026, 3, 5)] / ijr[date(2016, 3, 4)], rel=1e-9
    )

    def charts() -> list[str]:
        return sorted(r.symbols[0] for r in yahoo_replay.requests if r.path.startswith("/v8/finance/chart/"))

    clock.advance(timedelta(hours=18, minutes=30))  # 6 Mar, 11:00 in New York: the session is open
    yahoo_replay.as_of = clock()
    yahoo_replay.clear_requests()
    assert service.refresh_prices().ok
    assert charts() == sorted(INTRADAY_SYMBOLS)

    clock.advance(timedelta(hours=5, minutes=30))  # after the close
    yahoo_replay.as_of = date(2026, 3, 6)
    yahoo_replay.clear_requests()
    assert service.refresh_prices().ok
    assert charts() == sorted(SYMBOLS)
    session.close()


def test_a_level_rule_on_the_sp600_parses_and_replays_at_the_closes_the_csv_gives(tmp_path: Path) -> None:
    spec = parse_rule("sp600 above 1400 close")
    assert spec.target == "^SP600"
    closes = csv_column("SP600", "close")
    # The rule is created on the last close before the start, as `capgap replay` does.
    days = sorted(d for d in closes if date(2020, 12, 31) <= d <= date(2021, 12, 31))
    expected = above_fires([(d, closes[d]) for d in days], 1400.0, 0.01)
    assert expected[:2] == [date(2021, 6, 8), date(2021, 11, 1)]
    result = capgap(
        ["replay", "--from", "2021-01-01", "--to", "2021-12-31", "sp600 above 1400 close"],
        tmp_path,
        CAPGAP_MARKET=f"csv:{SHARED_DATA}",
    )
    assert result.returncode == 0, result.stderr
    fired = [date.fromisoformat(line.split()[0]) for line in result.stdout.splitlines() if line[:2] == "20"]
    assert fired == expected
    assert f"(^SP600 {closes[expected[0]]:,.2f})" in result.stdout
