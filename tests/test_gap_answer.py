"""/gap and /chart gap on a CSV directory whose funds.csv holds several dated snapshots.

Every P/B and P/E below is SYNTHETIC, made up for these tests: no public history of the funds' holdings
multiples exists to copy (issue 11), and ``../shared/data`` is real data that is never written to. The
prices are the real shared history, copied into ``tmp_path``. Expected figures are worked out here, from
the same synthetic numbers, without ``market.metrics`` or ``market.valuation``.
"""

from __future__ import annotations

import csv
import shutil
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.format import plain
from bot.services import Services, build_services
from market.calendar import NEW_YORK
from market.csv_source import CsvSource
from market.model import FundFacts, MarketData
from testing.world import AS_OF, make_config
from tests.conftest import FakeClock
from tests.test_answers import ask
from tests.test_cli import capgap

PRICE_FILES = ("RUT", "GSPC", "IWM", "VTWO", "SPY", "VOO", "IVV")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Row:
    """One SYNTHETIC funds.csv row: a fund's holdings multiples on a day (None: the cell is empty)."""

    symbol: str
    as_of: str
    pb: float | None
    pe: float | None = None


def rows(day: str, pb: Sequence[float | None], pe: Sequence[float | None] = ()) -> list[Row]:
    """IWM, VTWO, IVV, VOO on ``day``, in that order; a fund with neither multiple gets no row."""
    pe = tuple(pe) or (None,) * 4
    return [
        Row(symbol, day, b, e)
        for symbol, b, e in zip(("IWM", "VTWO", "IVV", "VOO"), pb, pe, strict=True)
        if b is not None or e is not None
    ]


# SYNTHETIC: four funds on five days placed for the lookbacks from 18 Jan 2024 (1W: 11 Jan, 1M: 18 Dec,
# 3M: 18 Oct, 1Y: 18 Jan 2023); twins within a few percent of each other, every move small.
CLEAN = [
    *rows("2023-01-18", (1.90, 1.92, 3.80, 3.82), (15.0, 15.2, 20.0, 20.1)),
    *rows("2023-10-18", (1.85, 1.86, 4.00, 4.02), (14.5, 14.6, 21.0, 21.2)),
    *rows("2023-12-18", (1.82, 1.84, 4.30, 4.28), (14.2, 14.3, 22.0, 22.1)),
    *rows("2024-01-11", (1.80, 1.81, 4.40, 4.42), (14.0, 14.1, 22.5, 22.4)),
    *rows("2024-01-18", (1.78, 1.80, 4.50, 4.48), (13.8, 13.9, 23.0, 23.2)),
]


def gap(small: float, large: float) -> float:
    return 1 - small / large


def mean_gap(day: str, measure: str = "pb", data: Sequence[Row] = CLEAN) -> float:
    """The mean of the two pairs' gaps on ``day``, from the synthetic rows themselves."""
    value = {r.symbol: (r.pb if measure == "pb" else r.pe) for r in data if r.as_of == day}
    return (gap(value["IWM"], value["IVV"]) + gap(value["VTWO"], value["VOO"])) / 2  # type: ignore[arg-type]


def write_funds(directory: Path, data: Sequence[Row], *, with_pe: bool = True) -> None:
    columns = ["symbol", "as_of", "expense_ratio", "total_assets", "price_to_book"]
    columns += ["price_to_earnings"] if with_pe else []
    with (directory / "funds.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, "source"])
        for row in data:
            cells = [row.symbol, row.as_of, "", "", "" if row.pb is None else row.pb]
            cells += ["" if row.pe is None else row.pe] if with_pe else []
            writer.writerow([*cells, "synthetic test values"])


@pytest.fixture
def market_dir(tmp_path: Path, shared_data: Path) -> Path:
    """A CSV directory in tmp_path: the real price history, and a funds.csv each test writes."""
    directory = tmp_path / "market"
    directory.mkdir()
    for stem in PRICE_FILES:
        shutil.copyfile(shared_data / f"{stem}_daily.csv", directory / f"{stem}_daily.csv")
    return directory


@pytest.fixture
def gap_world(
    tmp_path: Path, market_dir: Path, history_db: Path, clock: FakeClock
) -> Iterator[Callable[..., Services]]:
    """Services as at the 18 Jan 2024 close on ``market_dir`` with the funds.csv given, read the way the
    bot reads it (the source, the plausibility guard, the cache)."""
    opened: list[Services] = []

    def make(data: Sequence[Row], *, with_pe: bool = True) -> Services:
        write_funds(market_dir, data, with_pe=with_pe)
        config = make_config(tmp_path, f"csv:{market_dir}")
        shutil.copyfile(history_db, config.db_path)  # the same prices, already loaded
        services = build_services(config, source=CsvSource(market_dir, as_of=AS_OF), clock=clock)
        opened.append(services)
        assert services.market.refresh_funds().ok
        return services

    yield make
    for services in opened:
        services.close()


def line_starting(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(start))


# --- /gap ------------------------------------------------------------------------------------------------


async def test_gap_shows_each_pair_the_mean_and_the_twins_agreeing(
    gap_world: Callable[..., Services],
) -> None:
    text = plain((await ask(gap_world(CLEAN), "/gap")).text)
    pb = line_starting(text, "P/B (18 Jan 2024)")
    assert f"{mean_gap('2024-01-18') * 100:.1f}% discount" in pb
    assert "the mean of both pairs, checked by the twins" in pb
    assert f"iShares IWM 1.78 ÷ IVV 4.50: {gap(1.78, 4.50) * 100:.1f}% discount" in text
    assert f"Vanguard VTWO 1.80 ÷ VOO 4.48: {gap(1.80, 4.48) * 100:.1f}% discount" in text
    pe = line_starting(text, "P/E (18 Jan 2024)")
    assert f"{mean_gap('2024-01-18', 'pe') * 100:.1f}% discount" in pe
    twins = line_starting(text, "Twins (within 10%)")
    assert f"IWM 1.78 and VTWO 1.80 agree ({abs(1.78 / 1.80 - 1) * 100:.0f}% apart)" in twins
    assert "IVV 4.50 and VOO 4.48 agree" in twins


async def test_gap_history_is_counted_and_each_change_names_its_reading(
    gap_world: Callable[..., Services],
) -> None:
    text = plain((await ask(gap_world(CLEAN), "/gap")).text)
    assert "P/B: recorded since 18 Jan 2023, 5 readings." in text
    assert "P/E: recorded since 18 Jan 2023, 5 readings." in text
    now = mean_gap("2024-01-18")
    changes = line_starting(text, "Change to 18 Jan 2024")  # the first is P/B's
    for label, then in (
        ("1W", "2024-01-11"),
        ("1M", "2023-12-18"),
        ("3M", "2023-10-18"),
        ("1Y", "2023-01-18"),
    ):
        when = date.fromisoformat(then)
        expected = f"{label} {(now - mean_gap(then)) * 100:+.1f} pts (against {when.day} {when:%b %Y})"
        assert expected in changes


async def test_twins_that_disagree_leave_no_gap_figure_and_say_why(
    gap_world: Callable[..., Services],
) -> None:
    # SYNTHETIC: on 18 Jan VTWO's P/B is 2.20 against IWM's 1.78, 19% apart; P/E stays consistent.
    data = [
        *rows("2023-12-18", (1.82, 1.84, 4.30, 4.28), (14.2, 14.3, 22.0, 22.1)),
        *rows("2024-01-11", (1.80, 1.81, 4.40, 4.42), (14.0, 14.1, 22.5, 22.4)),
        *rows("2024-01-18", (1.78, 2.20, 4.50, 4.48), (13.8, 13.9, 23.0, 23.2)),
    ]
    text = plain((await ask(gap_world(data), "/gap")).text)
    pb = line_starting(text, "P/B (18 Jan 2024)")
    apart = abs(1.78 / 2.20 - 1) * 100
    assert "no figure, the reading is contradicted" in pb
    assert f"IWM's P/B 1.78 and VTWO's 2.20 disagree by {apart:.0f}% (more than 10%)" in pb
    for contradicted in (gap(1.78, 4.50), gap(2.20, 4.48), (gap(1.78, 4.50) + gap(2.20, 4.48)) / 2):
        assert f"{contradicted * 100:.1f}%" not in text
    held = mean_gap("2024-01-11", data=data)
    assert f"The last reading that held: {held * 100:.1f}% discount (11 Jan 2024)." in text
    assert "P/B: recorded since 18 Dec 2023, 2 readings, 1 contradicted left out." in text
    changes = line_starting(text, "Change to 11 Jan 2024")
    assert "1W no reading near then" in changes and "3M no reading near then" in changes
    assert f"1M {(held - mean_gap('2023-12-18', data=data)) * 100:+.1f} pts (against 18 Dec 2023)" in changes
    assert f"{mean_gap('2024-01-18', 'pe', data) * 100:.1f}% discount" in line_starting(
        text, "P/E (18 Jan 2024)"
    )


async def test_an_unconfirmed_jump_is_contradicted_and_one_pair_is_unchecked(
    gap_world: Callable[..., Services],
) -> None:
    # SYNTHETIC: only the iShares pair; IWM's P/B leaps from 1.80 to 2.60 in a week with no VTWO to confirm.
    data = [
        Row("IWM", "2024-01-11", 1.80, 14.0),
        Row("IVV", "2024-01-11", 4.40, 22.5),
        Row("IWM", "2024-01-18", 2.60, 13.8),
        Row("IVV", "2024-01-18", 4.50, 23.0),
    ]
    text = plain((await ask(gap_world(data), "/gap")).text)
    pb = line_starting(text, "P/B (18 Jan 2024)")
    assert f"IWM's P/B moved {(2.60 / 1.80 - 1) * 100:+.0f}% since its previous snapshot" in pb
    assert "with no VTWO reading to confirm it" in pb and f"{gap(2.60, 4.50) * 100:.1f}%" not in text
    pe = line_starting(text, "P/E (18 Jan 2024)")
    assert f"{gap(13.8, 23.0) * 100:.1f}% discount" in pe
    assert "the iShares pair only, ⚠️ unchecked" in pe
    assert "IWM has no VTWO reading to check it; IVV has no VOO reading to check it" in text


async def test_a_missing_pe_leaves_its_pair_out_and_its_twin_unchecked(
    gap_world: Callable[..., Services],
) -> None:
    # SYNTHETIC: VOO's P/E cell is empty on every day (a value up to 10 days old would stand in for it).
    data = [Row(r.symbol, r.as_of, r.pb, None if r.symbol == "VOO" else r.pe) for r in CLEAN]
    text = plain((await ask(gap_world(data), "/gap")).text)
    pe = line_starting(text, "P/E (18 Jan 2024)")
    assert f"{gap(13.8, 23.0) * 100:.1f}% discount" in pe and "the iShares pair only" in pe
    assert "IVV has no VOO reading to check it" in text
    assert "Vanguard VTWO 13.90" not in text


async def test_a_multiple_carried_from_an_earlier_snapshot_is_named_with_its_date(
    gap_world: Callable[..., Services],
) -> None:
    # SYNTHETIC: on 18 Jan VOO has no row, so its 11 Jan P/B (4.42, seven days old) stands in.
    data = [r for r in CLEAN if not (r.symbol == "VOO" and r.as_of == "2024-01-18")]
    text = plain((await ask(gap_world(data), "/gap")).text)
    assert f"Vanguard VTWO 1.80 ÷ VOO 4.42: {gap(1.80, 4.42) * 100:.1f}% discount" in text
    carried = line_starting(text, "Carried from an earlier snapshot")
    assert "VOO (11 Jan 2024)" in carried and "IWM" not in carried


async def test_funds_without_a_pe_column_give_no_pe_reading(gap_world: Callable[..., Services]) -> None:
    text = plain((await ask(gap_world(CLEAN, with_pe=False), "/gap")).text)
    assert "P/E: no reading (no fund of either pair has a P/E in the data)." in text
    assert f"{mean_gap('2024-01-18') * 100:.1f}% discount" in line_starting(text, "P/B (18 Jan 2024)")


async def test_published_readings_are_others_and_never_from_after_the_day(
    gap_world: Callable[..., Services],
) -> None:
    text = plain((await ask(gap_world(CLEAN), "/gap")).text)
    published = text.split("Published (others' figures on their own basis, not capgap's):")[1]
    assert "30% discount on P/E, Dec 2023: Michael Wilson, Morgan Stanley, via Investing.com" in published
    assert "Basis: small caps at a 30% discount" in published
    assert "Tom Lee" not in text  # published 22 Jan 2024, after the day this answer stands at
    assert "30%" not in text.split("Published")[0]


async def test_no_history_says_there_is_none_and_where_readings_come_from(
    gap_world: Callable[..., Services], market_dir: Path
) -> None:
    services = gap_world([])
    text = plain((await ask(services, "/gap")).text)
    assert "No reading yet" in text and "IWM/IVV and VTWO/VOO" in text and "never guessed" in text
    assert f"the as_of rows of {market_dir}/funds.csv" in text
    chart = await ask(services, "/chart gap")
    assert chart.photo is None
    assert plain(chart.text).startswith("No gap chart yet: capgap has no reading of the valuation gap")


class NoFundFactsYet:
    """A source at the edge that has prices but no fund facts yet, as Yahoo on a bad day: the real CSV
    history for closes, an empty answer for funds."""

    name = "Yahoo (replayed, no fund facts)"

    def __init__(self, directory: Path) -> None:
        self.prices = CsvSource(directory, as_of=AS_OF)

    def fetch(self, symbols: Sequence[str], since: date | None = None) -> MarketData:
        return self.prices.fetch(symbols, since)

    def fetch_funds(self, symbols: Sequence[str]) -> list[FundFacts]:
        return []


async def test_no_history_from_a_live_source_says_when_the_next_fetch_is_due(
    tmp_path: Path, market_dir: Path, history_db: Path, clock: FakeClock
) -> None:
    config = make_config(tmp_path, "yahoo")
    shutil.copyfile(history_db, config.db_path)
    services = build_services(config, source=NoFundFactsYet(market_dir), clock=clock)
    try:
        assert services.market.refresh_funds().ok
        text = plain((await ask(services, "/gap")).text)
    finally:
        services.close()
    # Fetched once a day: 20 hours after this fetch, at the job's next hourly wake-up at the latest.
    due = (clock.now + timedelta(hours=21)).astimezone(NEW_YORK)
    assert f"the next fetch is due by {due.day} {due:%b %Y %H:%M} ET" in text


# --- /chart gap ------------------------------------------------------------------------------------------


async def test_chart_gap_is_a_png_of_the_recorded_gap(gap_world: Callable[..., Services]) -> None:
    answer = await ask(gap_world(CLEAN), "/chart gap")
    assert answer.photo is not None and answer.photo_name == "capgap-gap.png"
    assert answer.photo.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", answer.photo[16:24])  # the IHDR chunk
    assert (width, height) == (1200, 1000) and len(answer.photo) > 20_000
    caption = plain(answer.text)
    assert "P/B since 18 Jan 2023, 5 readings; P/E since 18 Jan 2023, 5 readings" in caption
    assert "Marked: 1 published reading" in caption  # Dec 2023; 2014 is too far back, Jan 2024 too late
    assert "Not drawn: 1 published reading from before 18 Jan 2021 (Jul 2014)" in caption


async def test_chart_gap_takes_no_period(gap_world: Callable[..., Services]) -> None:
    text = plain((await ask(gap_world(CLEAN), "/chart gap 1y")).text)
    assert "/chart gap takes no period" in text


# --- the CLI, as the closing note shows it ---------------------------------------------------------------


def test_capgap_ask_gap_prints_the_checked_reading(market_dir: Path, tmp_path: Path) -> None:
    write_funds(market_dir, CLEAN)
    result = capgap(
        ["ask", "--as-of", AS_OF.isoformat(), "/gap"], tmp_path, CAPGAP_MARKET=f"csv:{market_dir}"
    )
    assert result.returncode == 0, result.stderr
    assert f"{mean_gap('2024-01-18') * 100:.1f}% discount" in result.stdout
    assert "P/B: recorded since 18 Jan 2023, 5 readings." in result.stdout
    assert not (tmp_path / "capgap.db").exists()
