"""market/csv_source.py against the real history in shared/data, read independently with the csv module."""

from __future__ import annotations

import csv
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from market import calendar
from market.csv_source import CsvSource
from market.instruments import SYMBOLS
from market.model import FundFacts, MarketUnavailable
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


def csv_closes(path: Path) -> dict[date, float]:
    """The close column of a history file, straight from the text (empty cells skipped)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            date.fromisoformat(row["date"]): float(row["close"])
            for row in csv.DictReader(handle)
            if row["close"].strip()
        }


def as_dict(series) -> dict[date, float]:  # type: ignore[no-untyped-def]
    return {stamp.date(): float(value) for stamp, value in series.items()}


@pytest.fixture(scope="module")
def history(shared_data: Path) -> dict[str, dict[date, float]]:
    return {symbol: csv_closes(shared_data / f"{symbol.lstrip('^')}_daily.csv") for symbol in SYMBOLS}


def write_history(directory: Path, name: str, rows: list[tuple[str, float]]) -> None:
    lines = ["date,open,high,low,close,adj_close,volume"]
    lines += [f"{day},{close},{close},{close},{close},{close},0" for day, close in rows]
    (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- closes -----------------------------------------------------------------------------------------


def test_every_close_equals_the_csv(shared_data: Path, history: dict[str, dict[date, float]]) -> None:
    data = CsvSource(shared_data).fetch(SYMBOLS)
    assert set(data.closes.columns) == set(SYMBOLS)
    assert data.closes.index.is_monotonic_increasing
    assert data.closes.index.is_unique
    assert data.closes.index.tz is None
    for symbol in SYMBOLS:
        assert as_dict(data.closes[symbol].dropna()) == history[symbol], symbol
        assert data.closes[symbol].dtype == "float64"


def test_as_of_shows_only_what_was_known_at_that_close(
    shared_data: Path, history: dict[str, dict[date, float]]
) -> None:
    data = CsvSource(shared_data, as_of=AS_OF).fetch(SYMBOLS)
    assert data.closes.index[-1].date() == AS_OF
    for symbol in SYMBOLS:
        expected = {day: close for day, close in history[symbol].items() if day <= AS_OF}
        assert as_dict(data.closes[symbol].dropna()) == expected, symbol


def test_as_of_on_a_weekend_ends_at_the_friday_close(shared_data: Path) -> None:
    data = CsvSource(shared_data, as_of=date(2024, 1, 20)).fetch(["^RUT"])
    assert data.closes.index[-1].date() == date(2024, 1, 19)


def test_since_limits_the_closes_but_not_the_quotes(
    shared_data: Path, history: dict[str, dict[date, float]]
) -> None:
    data = CsvSource(shared_data, as_of=AS_OF).fetch(["^RUT", "^GSPC"], since=date(2024, 1, 13))
    assert [d.date() for d in data.closes.index] == [date(2024, 1, 16), date(2024, 1, 17), date(2024, 1, 18)]
    assert data.closes.loc["2024-01-16", "^RUT"] == history["^RUT"][date(2024, 1, 16)]
    assert data.quotes["^RUT"].previous_close == history["^RUT"][date(2024, 1, 17)]


def test_quotes_are_the_last_close_at_its_official_time(
    shared_data: Path, history: dict[str, dict[date, float]]
) -> None:
    data = CsvSource(shared_data, as_of=AS_OF).fetch(SYMBOLS)
    for symbol in SYMBOLS:
        known = sorted(day for day in history[symbol] if day <= AS_OF)
        quote = data.quotes[symbol]
        assert quote.symbol == symbol
        assert quote.price == history[symbol][known[-1]]
        assert quote.previous_close == history[symbol][known[-2]]
        assert quote.time == calendar.session_close(known[-1])
    assert data.quotes["^RUT"].time == datetime(2024, 1, 18, 21, 0, tzinfo=UTC)


def test_source_is_named_after_its_directory(shared_data: Path) -> None:
    source = CsvSource(shared_data, as_of=AS_OF)
    assert source.name == f"CSV ({shared_data.name})"
    assert source.fetch(["^RUT"]).source == source.name


# --- the moment the source speaks for ---------------------------------------------------------------


def test_now_is_the_as_of_close_plus_the_settle_window(shared_data: Path) -> None:
    source = CsvSource(shared_data, as_of=AS_OF)
    assert source.now() == datetime(2024, 1, 18, 21, 0, tzinfo=UTC) + calendar.CLOSE_SETTLE
    assert source.fetch(["^RUT"]).fetched_at == source.now()
    # And at that moment the as_of session counts as closed.
    assert calendar.last_closed_session(source.now()) == AS_OF


def test_now_on_a_half_day_is_its_early_close_plus_settle(shared_data: Path) -> None:
    assert CsvSource(shared_data, as_of=date(2024, 11, 29)).now() == datetime(
        2024, 11, 29, 18, 20, tzinfo=UTC
    )


def test_now_on_a_holiday_speaks_for_the_previous_session(shared_data: Path) -> None:
    now = CsvSource(shared_data, as_of=date(2024, 7, 4)).now()
    assert now > calendar.session_close(date(2024, 7, 3)) + calendar.CLOSE_SETTLE
    assert now < calendar.session_open(date(2024, 7, 5))
    assert calendar.last_closed_session(now) == date(2024, 7, 3)


def test_now_without_as_of_is_the_injected_clock(shared_data: Path) -> None:
    clock = FakeClock(datetime(2024, 3, 1, 15, 0, tzinfo=UTC))
    source = CsvSource(shared_data, clock=clock)
    assert source.now() == clock.now
    clock.advance(hours=2)
    assert source.now() == datetime(2024, 3, 1, 17, 0, tzinfo=UTC)
    assert source.fetch(["^RUT"]).fetched_at == clock.now


# --- missing history --------------------------------------------------------------------------------


def test_a_missing_file_leaves_that_symbol_out(tmp_path: Path, shared_data: Path) -> None:
    shutil.copy(shared_data / "RUT_daily.csv", tmp_path / "RUT_daily.csv")
    data = CsvSource(tmp_path, as_of=AS_OF).fetch(["^RUT", "^GSPC", "IWM"])
    assert list(data.closes.columns) == ["^RUT"]
    assert set(data.quotes) == {"^RUT"}


def test_a_symbol_with_no_history_by_as_of_is_left_out(shared_data: Path) -> None:
    # VOO and VTWO started trading in September 2010.
    data = CsvSource(shared_data, as_of=date(2005, 1, 3)).fetch(SYMBOLS)
    assert set(data.closes.columns) == set(SYMBOLS) - {"VOO", "VTWO"}
    assert "VOO" not in data.quotes
    assert "VTWO" not in data.quotes


def test_no_history_at_all_is_market_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MarketUnavailable, match="no history files") as caught:
        CsvSource(tmp_path).fetch(["^RUT", "^GSPC"])
    assert str(tmp_path) in str(caught.value)


def test_history_that_starts_after_as_of_is_market_unavailable(shared_data: Path) -> None:
    with pytest.raises(MarketUnavailable):
        CsvSource(shared_data, as_of=date(1980, 1, 2)).fetch(["^RUT"])


def test_a_small_handwritten_history_is_read_exactly(tmp_path: Path) -> None:
    write_history(tmp_path, "RUT_daily.csv", [("2024-01-16", 1927.3), ("2024-01-17", 1913.17)])
    write_history(tmp_path, "GSPC_daily.csv", [("2024-01-17", 4739.21)])
    data = CsvSource(tmp_path).fetch(["^RUT", "^GSPC"])
    assert as_dict(data.closes["^RUT"]) == {date(2024, 1, 16): 1927.3, date(2024, 1, 17): 1913.17}
    assert as_dict(data.closes["^GSPC"].dropna()) == {date(2024, 1, 17): 4739.21}
    assert data.quotes["^GSPC"].previous_close is None  # a single row has no previous close


def test_a_rewritten_file_is_read_again(tmp_path: Path) -> None:
    write_history(tmp_path, "RUT_daily.csv", [("2024-01-17", 1913.17)])
    source = CsvSource(tmp_path)
    assert source.fetch(["^RUT"]).quotes["^RUT"].price == 1913.17
    write_history(tmp_path, "RUT_daily.csv", [("2024-01-17", 1913.17), ("2024-01-18", 1923.65)])
    path = tmp_path / "RUT_daily.csv"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later mtime, no sleeping
    assert source.fetch(["^RUT"]).quotes["^RUT"].price == 1923.65


# --- fund facts -------------------------------------------------------------------------------------


def test_shared_funds_csv_parses_as_written(shared_data: Path) -> None:
    with (shared_data / "funds.csv").open(newline="", encoding="utf-8") as handle:
        rows = {row["symbol"]: row for row in csv.DictReader(handle)}
    facts = {f.symbol: f for f in CsvSource(shared_data).fetch_funds(["IWM", "VTWO", "SPY", "VOO", "IVV"])}
    assert set(facts) == set(rows)
    for symbol, row in rows.items():
        fact = facts[symbol]
        assert fact.as_of == date.fromisoformat(row["as_of"])
        assert fact.expense_ratio == float(row["expense_ratio"])  # a fraction, as written
        assert fact.total_assets == (float(row["total_assets"]) if row["total_assets"] else None)
        assert fact.price_to_book == (float(row["price_to_book"]) if row["price_to_book"] else None)
        assert fact.source == f"funds.csv: {row['source']}"
    assert facts["IWM"].expense_ratio == 0.0019
    assert facts["IWM"].total_assets == 62e9
    assert facts["VTWO"].total_assets is None  # empty cell: unknown, not 0


def test_fund_facts_only_for_the_symbols_asked(shared_data: Path) -> None:
    assert [f.symbol for f in CsvSource(shared_data).fetch_funds(["IWM", "^RUT"])] == ["IWM"]


def test_no_funds_csv_means_no_fund_facts(tmp_path: Path) -> None:
    assert CsvSource(tmp_path).fetch_funds(["IWM", "SPY"]) == []


# Synthetic values, for the parser: not real fund facts.
FUNDS_HISTORY = """symbol,as_of,expense_ratio,total_assets,price_to_book,source,price_to_earnings
IWM,2023-06-30,0.0019,55000000000,2.05,mid-year report,14.5
iwm,2024-01-19,0.0019,62000000000,1.85,January report,
IWM,2024-06-28,0.0019,,1.95,,
SPY,2024-03-01,0.000945,500000000000,4.5,annual report,24
VOO,2022-12-30,nan,abc,inf,odd cells,x
VOO,not-a-date,0.0003,1,1,bad row,
IVV,2023-01-03,0.0003,,,,
QQQ,2023-01-03,0.002,1,1,not followed,
"""


@pytest.fixture
def funds_dir(tmp_path: Path) -> Path:
    (tmp_path / "funds.csv").write_text(FUNDS_HISTORY, encoding="utf-8")
    return tmp_path


ETF_SYMBOLS = ["IWM", "VTWO", "SPY", "VOO", "IVV"]


def test_funds_csv_history_without_as_of_keeps_every_good_row(funds_dir: Path) -> None:
    facts = CsvSource(funds_dir).fetch_funds(ETF_SYMBOLS)
    assert facts == [
        FundFacts("IWM", date(2023, 6, 30), 0.0019, 55e9, 2.05, "funds.csv: mid-year report", 14.5),
        FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, 1.85, "funds.csv: January report"),
        FundFacts("IWM", date(2024, 6, 28), 0.0019, None, 1.95, "funds.csv"),
        FundFacts("SPY", date(2024, 3, 1), 0.000945, 500e9, 4.5, "funds.csv: annual report", 24.0),
        # nan, inf and text are unknown, never numbers; the row with a bad date is skipped.
        FundFacts("VOO", date(2022, 12, 30), None, None, None, "funds.csv: odd cells"),
        FundFacts("IVV", date(2023, 1, 3), 0.0003, None, None, "funds.csv"),
    ]


def test_fund_facts_as_of_keep_snapshots_on_or_before_that_date(funds_dir: Path) -> None:
    facts = CsvSource(funds_dir, as_of=date(2024, 1, 19)).fetch_funds(ETF_SYMBOLS)
    by_symbol: dict[str, list[FundFacts]] = {}
    for fact in facts:
        by_symbol.setdefault(fact.symbol, []).append(fact)
    # IWM: both snapshots up to as_of, with their P/B; the June 2024 one is in the future.
    assert [(f.as_of, f.price_to_book) for f in by_symbol["IWM"]] == [
        (date(2023, 6, 30), 2.05),
        (date(2024, 1, 19), 1.85),
    ]
    assert by_symbol["IVV"] == [FundFacts("IVV", date(2023, 1, 3), 0.0003, None, None, "funds.csv")]
    # SPY has nothing on or before as_of: its earliest snapshot stands in (dated as published), minus P/B.
    assert by_symbol["SPY"] == [
        FundFacts("SPY", date(2024, 3, 1), 0.000945, 500e9, None, "funds.csv: annual report")
    ]


def test_fund_facts_before_any_snapshot_keep_the_earliest_without_price_to_book(funds_dir: Path) -> None:
    facts = CsvSource(funds_dir, as_of=date(2020, 1, 2)).fetch_funds(["IWM", "SPY"])
    assert facts == [
        FundFacts("IWM", date(2023, 6, 30), 0.0019, 55e9, None, "funds.csv: mid-year report"),
        FundFacts("SPY", date(2024, 3, 1), 0.000945, 500e9, None, "funds.csv: annual report"),
    ]
    assert all(f.price_to_book is None for f in facts)  # P/B never leaks from the future
    assert all(f.price_to_earnings is None for f in facts)  # nor P/E


def test_shared_funds_as_of_the_day_before_publication_have_no_price_to_book(shared_data: Path) -> None:
    facts = CsvSource(shared_data, as_of=AS_OF).fetch_funds(ETF_SYMBOLS)
    assert {f.symbol for f in facts} == set(ETF_SYMBOLS)
    assert all(f.as_of == date(2024, 1, 19) and f.price_to_book is None for f in facts)
    assert next(f for f in facts if f.symbol == "IWM").expense_ratio == 0.0019


def test_an_as_of_source_never_truncates_the_shared_parsed_file(shared_data: Path) -> None:
    """Parsed files are cached across sources; an as_of source must not cut the copy others see."""
    later = CsvSource(shared_data).fetch(["^RUT"])
    earlier = CsvSource(shared_data, as_of=AS_OF).fetch(["^RUT"])
    again = CsvSource(shared_data).fetch(["^RUT"])
    assert earlier.closes.index[-1].date() == AS_OF
    assert len(again.closes) == len(later.closes) > len(earlier.closes)
    assert again.closes.index[-1] - earlier.closes.index[-1] > timedelta(days=365)


# -- malformed rows -----------------------------------------------------------------------------------


def spoiled_copy(tmp_path: Path, shared_data: Path, stem: str, edits: dict[int, str]) -> Path:
    """A copy of the history directory whose ``stem`` file has the given 1-based lines replaced."""
    directory = tmp_path / "data"
    shutil.copytree(shared_data, directory)
    path = directory / f"{stem}_daily.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, text in edits.items():
        lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o644)
    return directory


def line_of(path: Path, day: str) -> tuple[int, str]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(day + ","):
            return number, line
    raise LookupError(day)


def test_malformed_rows_are_skipped_with_a_warning_naming_file_and_line(
    tmp_path: Path, shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    original = shared_data / "RUT_daily.csv"
    bad_close, close_line = line_of(original, "2024-01-19")
    bad_date, date_line = line_of(original, "2023-06-01")
    fields = close_line.split(",")
    fields[4] = "notanumber"
    directory = spoiled_copy(
        tmp_path,
        shared_data,
        "RUT",
        {bad_close: ",".join(fields), bad_date: "2023-13-45" + date_line[len("2023-06-01") :]},
    )

    with caplog.at_level("WARNING", logger="market.csv_source"):
        closes = CsvSource(directory).fetch(["^RUT"]).closes["^RUT"].dropna()

    expected = csv_closes(original)
    for gone in (date(2024, 1, 19), date(2023, 6, 1)):
        assert pd_missing(closes, gone)
        del expected[gone]
    assert {d.date(): v for d, v in closes.items()} == expected
    (message,) = [r.getMessage() for r in caplog.records if "RUT_daily.csv" in r.getMessage()]
    assert f"line {bad_close}: close 'notanumber' is not a number" in message
    assert f"line {bad_date}: date '2023-13-45' is not a YYYY-MM-DD date" in message


def pd_missing(closes: object, day: date) -> bool:
    import pandas as pd

    assert isinstance(closes, pd.Series)
    return pd.Timestamp(day) not in closes.index


def test_a_malformed_row_after_as_of_changes_nothing_before_it(tmp_path: Path, shared_data: Path) -> None:
    original = shared_data / "RUT_daily.csv"
    number, line = line_of(original, "2024-06-03")
    directory = spoiled_copy(tmp_path, shared_data, "RUT", {number: line.replace(",", ",x", 4)})
    spoiled = CsvSource(directory, as_of=AS_OF).fetch(["^RUT"]).closes["^RUT"].dropna()
    clean = CsvSource(shared_data, as_of=AS_OF).fetch(["^RUT"]).closes["^RUT"].dropna()
    assert spoiled.equals(clean)


def test_a_history_file_with_no_usable_row_refuses_with_its_name(tmp_path: Path, shared_data: Path) -> None:
    directory = tmp_path / "data"
    shutil.copytree(shared_data, directory)
    (directory / "IWM_daily.csv").chmod(0o644)
    (directory / "IWM_daily.csv").write_text("when,price\n2024-01-02,190\n", encoding="utf-8")
    with pytest.raises(MarketUnavailable, match=r"^IWM_daily.csv has no usable rows"):
        CsvSource(directory).check()
    (directory / "IWM_daily.csv").write_text("date,close\n2024-13-01,abc\n", encoding="utf-8")
    with pytest.raises(MarketUnavailable, match=r"^IWM_daily.csv has no usable rows"):
        CsvSource(directory).fetch(["IWM"])


def test_capgap_ask_with_an_unusable_history_file_prints_one_line(tmp_path: Path, shared_data: Path) -> None:
    from tests.test_cli import capgap

    directory = tmp_path / "data"
    shutil.copytree(shared_data, directory)
    (directory / "RUT_daily.csv").chmod(0o644)
    (directory / "RUT_daily.csv").write_text("", encoding="utf-8")
    result = capgap(["ask", "--as-of", "2024-01-18", "/standing"], tmp_path, CAPGAP_MARKET=f"csv:{directory}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "capgap: RUT_daily.csv has no usable rows (it needs date and close columns)"
    ]


def test_a_bad_number_in_funds_csv_is_named_with_its_line(
    tmp_path: Path, shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "data"
    shutil.copytree(shared_data, directory)
    funds = directory / "funds.csv"
    funds.chmod(0o644)
    lines = funds.read_text(encoding="utf-8").splitlines()
    (number,) = [i for i, line in enumerate(lines, start=1) if line.startswith("IWM,")]
    fields = lines[number - 1].split(",")
    fields[2] = "0.19%"
    lines[number - 1] = ",".join(fields)
    funds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="market.csv_source"):
        (iwm,) = CsvSource(directory).fetch_funds(["IWM"])
    assert iwm.expense_ratio is None
    assert f"funds.csv line {number}: expense_ratio '0.19%' is not a number; left unknown" in caplog.text


@pytest.mark.parametrize("stem", ["RUT", "GSPC", "IWM", "SP600", "IJR", "RSP"])
def test_the_quick_reading_of_a_clean_file_gives_what_the_careful_one_does(
    shared_data: Path, stem: str
) -> None:
    from market import csv_source

    path = shared_data / f"{stem}_daily.csv"
    quick = csv_source._read_clean(path, path.stat().st_mtime, "close")
    assert quick is not None  # the shared files are clean
    careful = csv_source._careful_closes(path)
    assert quick.index.equals(careful.index)
    assert (quick.to_numpy() == careful.to_numpy()).all()


def test_a_file_with_a_bad_cell_is_read_carefully_and_the_row_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from market import csv_source

    path = tmp_path / "RUT_daily.csv"
    path.write_text("date,close\n2024-01-02,1950.5\n2024-01-03,oops\n2024-01-04,1960.0\n")
    assert csv_source._read_clean(path, path.stat().st_mtime, "close") is None
    with caplog.at_level("WARNING"):
        series = csv_source._read_closes(path, path.stat().st_mtime)
    assert series.tolist() == [1950.5, 1960.0]
    assert "line 3: close 'oops' is not a number" in caplog.text
