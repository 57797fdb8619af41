"""database/connection.py and market/cache.py on real SQLite files in tmp_path."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlite_utils

from database.connection import open_database
from database.migrations import migrate
from market.cache import MIGRATIONS, MarketCache
from market.model import FundFacts, MarketData, Quote

FETCHED = datetime(2024, 1, 18, 21, 30, tzinfo=UTC)


def closes(table: dict[str, dict[str, float]]) -> pd.DataFrame:
    """{'^RUT': {'2024-01-17': 1913.17, ...}} as a closes frame (dates x symbols, NaN where missing)."""
    frame = pd.DataFrame({symbol: pd.Series(days) for symbol, days in table.items()}, dtype="float64")
    frame.index = pd.to_datetime(frame.index)
    return frame.sort_index()


def market_data(
    table: dict[str, dict[str, float]],
    quotes: dict[str, Quote] | None = None,
    source: str = "test source",
    fetched_at: datetime = FETCHED,
) -> MarketData:
    return MarketData(closes=closes(table), quotes=quotes or {}, source=source, fetched_at=fetched_at)


def close_rows(db: sqlite_utils.Database) -> list[tuple[str, str, float]]:
    return [
        tuple(r) for r in db.execute("SELECT symbol, day, close FROM closes ORDER BY symbol, day").fetchall()
    ]


# --- storage: the file and its migrations -----------------------------------------------------------


def test_open_database_uses_wal_and_foreign_keys(db: sqlite_utils.Database) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_wal_is_still_on_when_the_file_is_reopened(db_path: Path) -> None:
    open_database(db_path).close()
    again = open_database(db_path)
    try:
        assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        again.close()


def test_open_database_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "capgap" / "bot.db"
    database = open_database(path)
    try:
        MarketCache(database)
    finally:
        database.close()
    assert path.is_file()


def test_open_database_in_memory_works_without_a_file(tmp_path: Path) -> None:
    database = open_database(":memory:")
    try:
        cache = MarketCache(database)
        cache.store(market_data({"^RUT": {"2024-01-17": 1913.17}}), settled_through=None)
        assert cache.latest_days() == {"^RUT": date(2024, 1, 17)}
    finally:
        database.close()
    assert list(tmp_path.iterdir()) == []


def test_cache_migration_creates_the_tables_and_is_recorded_once(
    cache: MarketCache, db: sqlite_utils.Database
) -> None:
    assert {"closes", "quotes", "fund_facts", "refreshes", "held_values", "migrations"} <= set(
        db.table_names()
    )
    assert [r[0] for r in db.execute("SELECT name FROM migrations").fetchall()] == [
        "market-001-cache",
        "market-002-held-values",
        "market-003-price-to-earnings",
        "market-004-adjusted-closes",
    ]
    assert migrate(db, MIGRATIONS) == []  # a second run applies nothing
    MarketCache(db)  # nor does building another cache on the same file
    assert db.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)


def test_migrations_rerun_safely_on_a_reopened_file(db_path: Path) -> None:
    first = open_database(db_path)
    MarketCache(first).store(market_data({"^RUT": {"2024-01-17": 1913.17}}), settled_through=None)
    applied_at = first.execute("SELECT applied_at FROM migrations").fetchall()
    first.close()

    second = open_database(db_path)
    try:
        cache = MarketCache(second)
        assert migrate(second, MIGRATIONS) == []
        assert second.execute("SELECT applied_at FROM migrations").fetchall() == applied_at
        assert close_rows(second) == [("^RUT", "2024-01-17", 1913.17)]
        assert cache.latest_days() == {"^RUT": date(2024, 1, 17)}
    finally:
        second.close()


def test_migrate_applies_only_new_steps_in_order(db: sqlite_utils.Database) -> None:
    ran: list[str] = []

    def step(name: str):  # type: ignore[no-untyped-def]
        def apply(database: sqlite_utils.Database) -> None:
            ran.append(name)
            database[name].create({"id": int}, pk="id")

        return (name, apply)

    assert migrate(db, [step("one"), step("two")]) == ["one", "two"]
    assert migrate(db, [step("one"), step("two"), step("three")]) == ["three"]
    assert migrate(db, [step("one"), step("two"), step("three")]) == []
    assert ran == ["one", "two", "three"]
    assert {"one", "two", "three"} <= set(db.table_names())


def test_failed_migration_leaves_nothing_behind_and_runs_again(db: sqlite_utils.Database) -> None:
    def broken(database: sqlite_utils.Database) -> None:
        database["half_done"].create({"id": int}, pk="id")
        raise RuntimeError("step failed halfway")

    def fixed(database: sqlite_utils.Database) -> None:
        database["half_done"].create({"id": int}, pk="id")

    with pytest.raises(RuntimeError, match="halfway"):
        migrate(db, [("001-half", broken)])
    assert "half_done" not in db.table_names()  # rolled back with its transaction
    assert db.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == 0
    assert migrate(db, [("001-half", fixed)]) == ["001-half"]
    assert "half_done" in db.table_names()


# --- closes and quotes ------------------------------------------------------------------------------


def test_store_keeps_only_sessions_settled_by_settled_through(
    cache: MarketCache, db: sqlite_utils.Database
) -> None:
    live = Quote("^RUT", 1930.0, datetime(2024, 1, 18, 18, 0, tzinfo=UTC), previous_close=1913.17)
    data = market_data(
        {
            "^RUT": {"2024-01-16": 1927.30, "2024-01-17": 1913.17, "2024-01-18": 1930.0},
            "^GSPC": {"2024-01-16": 4765.98, "2024-01-17": 4739.21, "2024-01-18": 4770.0},
        },
        quotes={"^RUT": live},
    )
    written = cache.store(data, settled_through=date(2024, 1, 17))
    assert written == 4
    assert {day for _, day, _ in close_rows(db)} == {"2024-01-16", "2024-01-17"}
    snapshot = cache.snapshot()
    assert snapshot.latest_day == date(2024, 1, 17)
    # The live bar is a quote, not a close.
    assert snapshot.quotes["^RUT"] == live


def test_store_without_settled_through_keeps_every_close(cache: MarketCache) -> None:
    written = cache.store(
        market_data({"^RUT": {"2024-01-17": 1913.17, "2024-01-18": 1923.65}}), settled_through=None
    )
    assert written == 2
    assert cache.latest_days() == {"^RUT": date(2024, 1, 18)}


def test_latest_day_is_the_older_of_the_two_indices_newest_closes(cache: MarketCache) -> None:
    """One index lagging a day makes the cache as old as that index: stale, not hidden by the other."""
    cache.store(market_data({"^RUT": {"2024-01-17": 1913.17}}), settled_through=None)
    assert cache.latest_day() is None  # the S&P 500 has no close yet: nothing is current
    cache.store(market_data({"^GSPC": {"2024-01-17": 4739.21, "2024-01-18": 4780.94}}), settled_through=None)
    assert cache.latest_day() == date(2024, 1, 17)


def test_store_skips_missing_values_rather_than_storing_zero(
    cache: MarketCache, db: sqlite_utils.Database
) -> None:
    cache.store(
        market_data({"^RUT": {"2024-01-17": 1913.17, "2024-01-18": 1923.65}, "IWM": {"2024-01-18": 192.5}}),
        settled_through=None,
    )
    assert close_rows(db) == [
        ("IWM", "2024-01-18", 192.5),
        ("^RUT", "2024-01-17", 1913.17),
        ("^RUT", "2024-01-18", 1923.65),
    ]
    frame = cache.snapshot().closes
    assert math.isnan(frame.loc["2024-01-17", "IWM"])


def test_store_records_source_and_fetch_time(cache: MarketCache, db: sqlite_utils.Database) -> None:
    cache.store(market_data({"^RUT": {"2024-01-17": 1913.17}}, source="CSV (data)"), settled_through=None)
    row = db.execute("SELECT source, fetched_at FROM closes").fetchone()
    assert row == ("CSV (data)", FETCHED.isoformat())


def test_upsert_replaces_a_corrected_close(cache: MarketCache, db: sqlite_utils.Database) -> None:
    cache.store(market_data({"^RUT": {"2024-01-16": 1927.30, "2024-01-17": 1900.00}}), settled_through=None)
    later = FETCHED + timedelta(days=1)
    cache.store(
        market_data({"^RUT": {"2024-01-17": 1913.17}}, source="corrected", fetched_at=later),
        settled_through=None,
    )
    assert close_rows(db) == [("^RUT", "2024-01-16", 1927.30), ("^RUT", "2024-01-17", 1913.17)]
    assert db.execute("SELECT source, fetched_at FROM closes WHERE day = '2024-01-17'").fetchone() == (
        "corrected",
        later.isoformat(),
    )
    assert cache.snapshot().closes.loc["2024-01-17", "^RUT"] == 1913.17


def test_quotes_round_trip_and_the_newest_replaces_the_old(cache: MarketCache) -> None:
    first = Quote("IWM", 190.0, datetime(2024, 1, 18, 15, 0, tzinfo=UTC), previous_close=None)
    cache.store(market_data({}, quotes={"IWM": first}), settled_through=None)
    assert cache.snapshot().quotes == {"IWM": first}
    second = Quote("IWM", 191.5, datetime(2024, 1, 18, 16, 0, tzinfo=UTC), previous_close=189.0)
    cache.store(market_data({}, quotes={"IWM": second}), settled_through=None)
    quote = cache.snapshot().quotes["IWM"]
    assert quote == second
    assert quote.time.tzinfo is not None
    assert quote.time.utcoffset() == timedelta(0)


# --- snapshots --------------------------------------------------------------------------------------


def test_empty_cache_gives_an_empty_snapshot(cache: MarketCache) -> None:
    snapshot = cache.snapshot()
    assert snapshot.closes.empty
    assert snapshot.latest_day is None
    assert snapshot.quotes == {}
    assert snapshot.funds.empty
    assert snapshot.fund("IWM") is None
    assert snapshot.source is None
    assert snapshot.fetched_at is None
    assert snapshot.last_error is None
    assert snapshot.series("^RUT").empty
    assert snapshot.series("^RUT").dtype == "float64"
    assert cache.latest_day() is None


def test_snapshot_frame_has_the_shared_closes_shape(cache: MarketCache) -> None:
    # Stored out of order and in two batches: the frame still comes back sorted and whole.
    cache.store(market_data({"^RUT": {"2024-01-18": 1923.65, "2024-01-16": 1927.30}}), settled_through=None)
    cache.store(
        market_data(
            {"^GSPC": {"2024-01-17": 4739.21, "2024-01-16": 4765.98}, "^RUT": {"2024-01-17": 1913.17}}
        ),
        settled_through=None,
    )
    frame = cache.snapshot().closes
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.tz is None
    assert (frame.index == frame.index.normalize()).all()
    assert frame.index.is_monotonic_increasing
    assert frame.index.is_unique
    assert frame.index.name is None
    assert frame.columns.name is None
    assert sorted(frame.columns) == ["^GSPC", "^RUT"]
    assert all(dtype == "float64" for dtype in frame.dtypes)
    assert list(frame.index.date) == [date(2024, 1, 16), date(2024, 1, 17), date(2024, 1, 18)]
    assert frame["^RUT"].tolist() == [1927.30, 1913.17, 1923.65]
    assert frame["^GSPC"].tolist()[:2] == [4765.98, 4739.21]
    assert math.isnan(frame.loc["2024-01-18", "^GSPC"])
    # series() drops the gap; an unknown symbol is an empty series, not an error.
    assert cache.snapshot().series("^GSPC").index.date.tolist() == [date(2024, 1, 16), date(2024, 1, 17)]
    assert cache.snapshot().series("VOO").empty


def test_snapshot_as_of_hides_later_closes(cache: MarketCache) -> None:
    cache.store(
        market_data({"^RUT": {"2024-01-18": 1923.65, "2024-01-19": 1944.39, "2024-01-22": 1950.0}}),
        settled_through=None,
    )
    assert cache.snapshot(date(2024, 1, 19)).latest_day == date(2024, 1, 19)
    # A Sunday: the Friday close is the latest known.
    weekend = cache.snapshot(date(2024, 1, 21))
    assert weekend.latest_day == date(2024, 1, 19)
    assert weekend.series("^RUT").tolist() == [1923.65, 1944.39]
    assert cache.snapshot(date(2024, 1, 17)).closes.empty
    assert cache.snapshot().latest_day == date(2024, 1, 22)


def test_a_cache_in_memory_answers_as_one_on_a_file(cache: MarketCache) -> None:
    """A database in memory keeps its closes in a frame, not in SQLite: every answer is the same."""
    database = open_database(":memory:")
    try:
        in_memory = MarketCache(database)
        firsts = {"^RUT": date(2024, 1, 18), "^GSPC": date(2024, 1, 17), "IWM": date(2024, 1, 16)}
        assert in_memory.closes_before(firsts) == {} and in_memory.latest_days() == {}
        assert in_memory.snapshot().closes.empty
        live = Quote("^RUT", 1930.0, datetime(2024, 1, 19, 18, 0, tzinfo=UTC), previous_close=1913.17)
        stores = [
            # Out of order, with a gap and a zero (a row from before the plausibility guard)...
            (
                market_data(
                    {
                        "^RUT": {"2024-01-18": 1923.65, "2024-01-16": 1927.30, "2024-01-17": 1900.00},
                        "^GSPC": {"2024-01-16": 4765.98, "2024-01-18": 0.0},
                        "IWM": {"2024-01-17": 191.0},
                    }
                ),
                None,
            ),
            # ...then a correction of one close, a new symbol, and a live bar that is no close yet.
            (
                market_data(
                    {
                        "^RUT": {"2024-01-17": 1913.17, "2024-01-19": 1944.39},
                        "VOO": {"2024-01-18": 437.0, "2024-01-19": 440.0},
                    },
                    quotes={"^RUT": live},
                ),
                date(2024, 1, 18),
            ),
        ]
        for data, settled in stores:
            assert in_memory.store(data, settled) == cache.store(data, settled)
            assert in_memory.latest_days() == cache.latest_days()
            assert in_memory.latest_day() == cache.latest_day()
            assert in_memory.closes_before(firsts) == cache.closes_before(firsts)
            for as_of in (None, date(2024, 1, 17), date(2024, 1, 15)):
                ours, theirs = in_memory.snapshot(as_of), cache.snapshot(as_of)
                pd.testing.assert_frame_equal(ours.closes, theirs.closes)
                assert ours.quotes == theirs.quotes
                assert ours.latest_day == theirs.latest_day
        assert cache.closes_before({"^RUT": date(2024, 1, 18)}) == {"^RUT": 1913.17}
        assert in_memory.snapshot().closes.loc["2024-01-17", "^RUT"] == 1913.17
        assert in_memory.db.execute("SELECT COUNT(*) FROM closes").fetchone()[0] == 0
    finally:
        database.close()


# --- fund facts -------------------------------------------------------------------------------------


def test_fund_facts_round_trip_with_unknown_fields_staying_none(
    cache: MarketCache, db: sqlite_utils.Database
) -> None:
    full = FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, 1.85, "funds.csv: Barchart", 16.0)
    sparse = FundFacts("VTWO", date(2024, 1, 19), 0.0010, None, None, "funds.csv")
    cache.store_funds([full, sparse], FETCHED)
    snapshot = cache.snapshot()
    assert snapshot.fund("IWM") == full
    assert snapshot.fund("VTWO") == sparse
    assert snapshot.fund("VTWO").total_assets is None  # never 0
    assert snapshot.fund("SPY") is None
    # In the file itself an unknown field is NULL, not 0.
    assert db.execute(
        "SELECT total_assets, price_to_book, price_to_earnings FROM fund_facts WHERE symbol = 'VTWO'"
    ).fetchone() == (None, None, None)
    assert (
        db.execute("SELECT fetched_at FROM fund_facts WHERE symbol = 'IWM'").fetchone()[0]
        == FETCHED.isoformat()
    )


def test_fund_facts_with_every_field_unknown_stay_none(cache: MarketCache) -> None:
    cache.store_funds([FundFacts("SPY", date(2024, 1, 19), None, None, None, "funds.csv")], FETCHED)
    assert cache.snapshot().fund("SPY") == FundFacts("SPY", date(2024, 1, 19), None, None, None, "funds.csv")


def test_fund_picks_the_newest_snapshot(cache: MarketCache) -> None:
    # Stored out of order; the newest snapshot wins as a whole (its unknowns are not filled from older ones).
    cache.store_funds(
        [
            FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, None, "jan"),
            FundFacts("IWM", date(2023, 6, 30), 0.0019, 55e9, 1.9, "jun"),
            FundFacts("IWM", date(2023, 12, 29), 0.0019, 60e9, 1.8, "dec"),
            FundFacts("SPY", date(2022, 1, 3), 0.000945, 400e9, 4.5, "old"),
        ],
        FETCHED,
    )
    snapshot = cache.snapshot()
    assert snapshot.fund("IWM") == FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, None, "jan")
    assert snapshot.fund("SPY").as_of == date(2022, 1, 3)
    assert len(snapshot.funds) == 4
    assert set(snapshot.funds["as_of"]) == {
        date(2024, 1, 19),
        date(2023, 6, 30),
        date(2023, 12, 29),
        date(2022, 1, 3),
    }


def test_storing_a_fund_snapshot_again_replaces_it(cache: MarketCache) -> None:
    cache.store_funds([FundFacts("IWM", date(2024, 1, 19), 0.0020, None, None, "first")], FETCHED)
    cache.store_funds([FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, None, "second")], FETCHED)
    snapshot = cache.snapshot()
    assert len(snapshot.funds) == 1
    assert snapshot.fund("IWM") == FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, None, "second")


def test_storing_no_fund_facts_writes_nothing(cache: MarketCache) -> None:
    cache.store_funds([], FETCHED)
    assert cache.snapshot().funds.empty


# --- the refresh log --------------------------------------------------------------------------------


def test_last_refresh_is_the_newest_of_its_kind(cache: MarketCache) -> None:
    assert cache.last_refresh("prices") is None
    t0 = datetime(2024, 1, 18, 21, 30, tzinfo=UTC)
    cache.record_refresh("prices", t0, True, "Yahoo Finance", "40 closes")
    cache.record_refresh("funds", t0 + timedelta(minutes=1), True, "Yahoo Finance", "5 fund snapshots")
    cache.record_refresh("prices", t0 + timedelta(minutes=5), False, "Yahoo Finance", "rate limited")

    newest = cache.last_refresh("prices")
    assert newest is not None
    assert (newest["kind"], newest["at"], newest["ok"], newest["source"], newest["detail"]) == (
        "prices",
        (t0 + timedelta(minutes=5)).isoformat(),
        0,
        "Yahoo Finance",
        "rate limited",
    )
    ok = cache.last_refresh("prices", ok=True)
    assert ok is not None
    assert ok["at"] == t0.isoformat()
    assert ok["detail"] == "40 closes"
    assert cache.last_refresh("funds", ok=False) is None
    assert cache.last_refresh("funds")["detail"] == "5 fund snapshots"  # type: ignore[index]
    assert cache.last_refresh("alerts") is None


def test_refresh_detail_is_cut_to_2000_characters(cache: MarketCache) -> None:
    cache.record_refresh("prices", FETCHED, False, "Yahoo Finance", "x" * 5000)
    assert cache.last_refresh("prices")["detail"] == "x" * 2000  # type: ignore[index]


def test_snapshot_reports_the_last_good_refresh_and_a_newer_failure(cache: MarketCache) -> None:
    t0 = datetime(2024, 1, 18, 21, 30, tzinfo=UTC)
    cache.record_refresh("prices", t0, True, "Yahoo Finance", "40 closes")
    cache.record_refresh("prices", t0 + timedelta(minutes=5), False, "Yahoo Finance", "Yahoo is down")
    snapshot = cache.snapshot()
    assert (snapshot.source, snapshot.fetched_at, snapshot.last_error) == (
        "Yahoo Finance",
        t0,
        "Yahoo is down",
    )

    cache.record_refresh("prices", t0 + timedelta(minutes=10), True, "Yahoo Finance", "2 closes")
    snapshot = cache.snapshot()
    assert snapshot.fetched_at == t0 + timedelta(minutes=10)
    assert snapshot.last_error is None


def test_a_failed_fund_refresh_is_not_a_price_error(cache: MarketCache) -> None:
    cache.record_refresh("funds", FETCHED, False, "Yahoo Finance", "no fund data")
    assert cache.snapshot().last_error is None


def test_refresh_log_keeps_the_newest_thousand_entries(cache: MarketCache, db: sqlite_utils.Database) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(1005):
        cache.record_refresh("prices", t0 + timedelta(minutes=5 * i), True, "Yahoo Finance", f"refresh {i}")
    assert db.execute("SELECT COUNT(*) FROM refreshes").fetchone()[0] == 1000
    details = [r[0] for r in db.execute("SELECT detail FROM refreshes ORDER BY id").fetchall()]
    assert details[0] == "refresh 5"
    assert details[-1] == "refresh 1004"
    assert cache.last_refresh("prices")["detail"] == "refresh 1004"  # type: ignore[index]
