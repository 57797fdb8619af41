"""Gap alerts (`gap …` on P/B, `pegap …` on P/E): judged on the trusted two-pair reading, once per new
snapshot, never on one its twins contradict; `capgap replay` judges them on funds.csv's as_of rows.

Every P/B and P/E below is SYNTHETIC, made up for these tests: no public history of the funds' holdings
multiples exists to copy (issue 11), and ``../shared/data`` is real data that is never written to. The
prices are the real shared history, copied into ``tmp_path``. Expected gaps and alert dates are worked out
here from the synthetic numbers themselves (1 − small ÷ large per pair, the mean of the pairs), without
``market.valuation``, ``market.metrics`` or ``alerts``.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from alerts.engine import current_observation, run_refresh
from alerts.rules import parse_rule
from bot.format import plain
from bot.services import Services
from market.model import FundFacts
from testing.alerts_oracle import above_fires
from testing.world import SHARED_DATA
from tests.conftest import FakeClock, advance_market
from tests.test_answers import ask
from tests.test_cli import capgap

PRICE_FILES = ("RUT", "GSPC", "IWM", "VTWO", "SPY", "VOO", "IVV")
PAIRS = (("IWM", "IVV"), ("VTWO", "VOO"))


@dataclass(frozen=True)
class Day:
    """One SYNTHETIC snapshot date: each fund's (P/B, P/E); a fund left out has no row that day."""

    as_of: str
    funds: dict[str, tuple[float, float]]


def four(as_of: str, pb: Sequence[float], pe: Sequence[float]) -> Day:
    """IWM, VTWO, IVV, VOO in that order."""
    symbols = ("IWM", "VTWO", "IVV", "VOO")
    return Day(as_of, {s: (b, e) for s, b, e in zip(symbols, pb, pe, strict=True)})


# SYNTHETIC, weekly on Wednesdays (each a trading day). Twins agree within 2% except where marked.
HISTORY = [
    four("2023-11-01", (1.80, 1.82, 4.00, 4.02), (14.0, 14.1, 20.0, 20.1)),
    four("2023-11-08", (1.76, 1.77, 4.05, 4.06), (13.5, 13.6, 20.5, 20.4)),
    four("2023-11-15", (1.60, 1.61, 4.20, 4.18), (13.4, 13.5, 20.6, 20.5)),
    # Twin disagreement on P/B: IWM 1.20 against VTWO 1.60 (25% apart). Its P/E is clean.
    four("2023-11-22", (1.20, 1.60, 4.20, 4.20), (13.3, 13.3, 20.7, 20.7)),
    four("2023-11-29", (1.58, 1.59, 4.25, 4.24), (13.0, 13.1, 21.0, 21.1)),
    four("2023-12-13", (1.50, 1.51, 4.40, 4.38), (12.5, 12.6, 21.5, 21.4)),
    # Only the iShares pair, more than ten days after the last Vanguard row: unchecked, no twin to compare.
    Day("2023-12-27", {"IWM": (1.52, 12.4), "IVV": (4.42, 21.6)}),
    # A jump: IWM's P/B −31% in a week with no VTWO reading to confirm it. Its P/E moves 1%.
    Day("2024-01-03", {"IWM": (1.05, 12.3), "IVV": (4.45, 21.7)}),
    four("2024-01-10", (1.40, 1.41, 4.45, 4.44), (12.0, 12.1, 22.0, 21.9)),
]
# The dates whose P/B reading is contradicted, by construction (checked in the test below).
CONTRADICTED_PB = {"2023-11-22", "2024-01-03"}
START, END = "2023-11-02", "2024-01-12"  # rules are created at the 1 Nov close, the first reading's


def gap(measure: str, day: Day) -> float:
    """The day's gap in percent: 1 − small ÷ large for each pair with both funds, the mean of those."""
    at = 0 if measure == "pb" else 1
    pairs = [
        1 - day.funds[small][at] / day.funds[large][at]
        for small, large in PAIRS
        if small in day.funds and large in day.funds
    ]
    return sum(pairs) / len(pairs) * 100


def trusted(measure: str) -> list[tuple[str, float]]:
    contradicted = CONTRADICTED_PB if measure == "pb" else set()
    return [(d.as_of, gap(measure, d)) for d in HISTORY if d.as_of not in contradicted]


def shift_dates(readings: list[tuple[str, float]], points: float) -> list[str]:
    """A shift rule set at the first reading: fires at each reading ``points`` or more from the last one
    it fired at (or the first)."""
    (_, reference), *rest = readings
    fired = []
    for when, value in rest:
        if abs(value - reference) >= points:
            fired.append(when)
            reference = value
    return fired


def above_dates(readings: list[tuple[str, float]], level: float, band: float = 0.01) -> list[str]:
    """An above rule set at the first reading: fires on reaching ``level``, re-arms below level × (1 − band)."""
    return above_fires(readings, level, band)


def write_funds(directory: Path, history: Sequence[Day]) -> None:
    with (directory / "funds.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["symbol", "as_of", "expense_ratio", "total_assets", "price_to_book", "price_to_earnings"]
        )
        for day in history:
            for symbol, (pb, pe) in day.funds.items():
                writer.writerow([symbol, day.as_of, "", "", pb, pe])


def market_dir(base: Path, history: Sequence[Day] | None) -> Path:
    """A CSV directory: the real price history, and the synthetic funds.csv (none when ``history`` is None)."""
    directory = base / "market"
    directory.mkdir()
    for stem in PRICE_FILES:
        shutil.copyfile(SHARED_DATA / f"{stem}_daily.csv", directory / f"{stem}_daily.csv")
    if history is not None:
        write_funds(directory, history)
    return directory


def fired_on(output: str, rule: str) -> list[str]:
    """The ISO dates of `capgap replay`'s lines for the rule whose canonical text starts with ``rule``."""
    return [line[:10] for line in output.splitlines() if line[12:].startswith(f"{rule} ·")]


RULES = ("gap shift 3", "gap above 65%", "gap above 70%", "pegap shift 3", "pegap above 40%")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """One `capgap replay` of every rule above over the synthetic history."""
    base = tmp_path_factory.mktemp("replay")
    directory = market_dir(base, HISTORY)
    return capgap(["replay", "--from", START, "--to", END, *RULES], base, CAPGAP_MARKET=f"csv:{directory}")


def test_the_fixture_contradicts_where_it_says_and_only_there() -> None:
    """The marked dates break a stated check (twins 10% apart; a 25% move with no twin) and no other does."""
    by_date = {d.as_of: d.funds for d in HISTORY}
    assert abs(by_date["2023-11-22"]["IWM"][0] / by_date["2023-11-22"]["VTWO"][0] - 1) > 0.10
    assert "VTWO" not in by_date["2024-01-03"] and "VTWO" not in by_date["2023-12-27"]
    assert abs(by_date["2024-01-03"]["IWM"][0] / by_date["2023-12-27"]["IWM"][0] - 1) > 0.25
    for day in HISTORY:
        for first, second in (("IWM", "VTWO"), ("IVV", "VOO")):
            if first in day.funds and second in day.funds and day.as_of not in CONTRADICTED_PB:
                assert abs(day.funds[first][0] / day.funds[second][0] - 1) <= 0.10
            if first in day.funds and second in day.funds:
                assert abs(day.funds[first][1] / day.funds[second][1] - 1) <= 0.10


def test_replay_judges_gap_rules_on_the_funds_history(replayed: subprocess.CompletedProcess[str]) -> None:
    """`gap shift 3` and `gap above 65%` fire on the dates worked out from the trusted P/B readings."""
    assert replayed.returncode == 0, replayed.stderr
    pb = trusted("pb")
    assert fired_on(replayed.stdout, "gap shift 3") == shift_dates(pb, 3) == ["2023-11-15", "2023-12-13"]
    assert fired_on(replayed.stdout, "gap above 65%") == above_dates(pb, 65) == ["2023-12-13"]
    shown = {line[:10]: line for line in replayed.stdout.splitlines() if "gap shift 3" in line}
    assert shown["2023-11-15"].endswith(f"(GAP {gap('pb', HISTORY[2]):.4g})")


def test_replay_judges_pegap_rules_on_the_pe_history(replayed: subprocess.CompletedProcess[str]) -> None:
    """`pegap …` reads P/E, whose readings are all trusted (the P/B contradictions do not touch them)."""
    pe = trusted("pe")
    assert len(pe) == len(HISTORY)
    assert fired_on(replayed.stdout, "pegap shift 3") == shift_dates(pe, 3)
    assert fired_on(replayed.stdout, "pegap above 40%") == above_dates(pe, 40)
    assert fired_on(replayed.stdout, "pegap shift 3") and fired_on(replayed.stdout, "pegap above 40%")


def test_a_twin_disagreement_fires_nothing_on_its_date(replayed: subprocess.CompletedProcess[str]) -> None:
    """Judged, the contradicted 22 Nov reading would have crossed 65% and shifted 3 points (and then moved
    the shift's reference, firing again on 29 Nov); it is judged by nobody."""
    everything = [(d.as_of, gap("pb", d)) for d in HISTORY if d.as_of != "2024-01-03"]
    assert "2023-11-22" in above_dates(everything, 65) and "2023-11-22" in shift_dates(everything, 3)
    assert "2023-11-29" in shift_dates(everything, 3)
    pb_lines = [line for line in replayed.stdout.splitlines() if line[12:].startswith("gap ")]
    assert not any(line.startswith(("2023-11-22", "2023-11-29")) for line in pb_lines)


def test_a_jump_fires_nothing(replayed: subprocess.CompletedProcess[str]) -> None:
    """IWM's unconfirmed −31% on 3 Jan would read above 70% and shift the gap 10 points; nothing fires."""
    jumped = gap("pb", HISTORY[7])
    assert jumped >= 70 and jumped - gap("pb", HISTORY[6]) >= 3
    assert fired_on(replayed.stdout, "gap above 70%") == above_dates(trusted("pb"), 70) == []
    assert "2024-01-03" not in replayed.stdout


def test_replay_says_what_the_gap_rules_were_judged_on(replayed: subprocess.CompletedProcess[str]) -> None:
    assert (
        f"capgap: gap rules judged on {len(trusted('pb'))} P/B reading(s) of funds.csv, 2023-11-01 to "
        "2024-01-10; 2 contradicted (twins apart or an unconfirmed jump), not judged"
    ) in replayed.stderr
    assert f"capgap: pegap rules judged on {len(HISTORY)} P/E reading(s) of funds.csv" in replayed.stderr


@pytest.mark.parametrize("history", [None, [Day("2023-11-01", {"IWM": (1.8, 14.0), "VTWO": (1.8, 14.0)})]])
def test_replay_without_a_gap_history_refuses_gap_rules_in_one_line(
    tmp_path: Path, history: list[Day] | None
) -> None:
    """No funds.csv, or one with no pair (only small-cap funds): a one-line refusal, not "0 alert(s)"."""
    directory = market_dir(tmp_path, history)
    result = capgap(
        ["replay", "--from", START, "--to", END, "rut above 1900 close", "gap shift 3"],
        tmp_path,
        CAPGAP_MARKET=f"csv:{directory}",
    )
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"capgap: gap rules cannot be replayed: {directory / 'funds.csv'} has no trusted P/B reading up to "
        f"{END} (price_to_book of IWM and IVV, or of VTWO and VOO, on an as_of row)"
    ]


# --- the grammar --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical", "key"),
    [
        ("gap above 45%", "gap above 45% · close · band 1%", "GAP"),
        ("PEGAP below 30", "pegap below 30% · close · band 1%", "PEGAP"),
        ("pegap shift 3 once", "pegap shift 3 · close · once", "PEGAP"),
    ],
)
def test_pegap_reads_like_gap_on_the_pe_gap(text: str, canonical: str, key: str) -> None:
    spec = parse_rule(text)
    assert (spec.canonical, spec.key, spec.mode) == (canonical, key, "close")
    assert parse_rule(spec.canonical) == spec


def test_a_pegap_rule_has_no_live_value_and_says_what_it_watches() -> None:
    with pytest.raises(ValueError, match="no live value"):
        parse_rule("pegap above 40% live")
    assert "valuation gap on price-to-earnings moves 3 points" in parse_rule("pegap shift 3").describe()


# --- live: the bot's refresh through the real store ---------------------------------------------------

JAN_18, JAN_19, JAN_22, JAN_23 = (date(2024, 1, d) for d in (18, 19, 22, 23))


def snapshot_facts(day: date, iwm: float, vtwo: float, ivv: float, voo: float) -> list[FundFacts]:
    """SYNTHETIC P/B snapshots of the four funds on ``day`` (not market data)."""
    funds = {"IWM": iwm, "VTWO": vtwo, "IVV": ivv, "VOO": voo}
    return [FundFacts(s, day, None, None, pb, "synthetic P/B for tests") for s, pb in funds.items()]


@pytest.fixture
def gap_rules(csv_services: Services, clock: FakeClock) -> tuple[Services, dict[str, int]]:
    """`gap shift 3` and `gap above 45%` set at the 18 Jan close on a 40% gap (1 − 2.4/4 on both pairs)."""
    cache = csv_services.market.cache
    cache.store_funds(snapshot_facts(JAN_18, 2.40, 2.40, 4.00, 4.00), clock())
    now = clock()
    ids = {}
    for text in ("gap shift 3", "gap above 45%"):
        current = current_observation(cache.snapshot(), now, "GAP")
        assert current is not None and current.value == pytest.approx((1 - 2.40 / 4.00) * 100)
        ids[text] = csv_services.alerts.rules.add(1001, parse_rule(text), current, now)[0]
    return csv_services, ids


def refresh(services: Services) -> int:
    return run_refresh(services.alerts, services.market.snapshot, services.now()).fired


def test_a_gap_rule_fires_once_per_new_snapshot_and_never_twice_for_one(
    gap_rules: tuple[Services, dict[str, int]], clock: FakeClock
) -> None:
    services, ids = gap_rules
    assert refresh(services) == 0
    advance_market(services, clock, JAN_19)
    services.market.cache.store_funds(snapshot_facts(JAN_19, 2.10, 2.12, 4.00, 4.02), clock())
    assert refresh(services) == 2  # (1 − 2.10/4.00 + 1 − 2.12/4.02) / 2 = 47.4%: a shift of 7.4, above 45
    for _ in range(3):  # the same snapshot judged again by later refreshes (prices, the close): nothing
        clock.advance(minutes=20)
        assert refresh(services) == 0
    reference = services.alerts.rules.active.loc[ids["gap shift 3"], "reference"]
    assert reference == pytest.approx(((1 - 2.10 / 4.00) + (1 - 2.12 / 4.02)) / 2 * 100)
    # A new snapshot 3.2 points wider fires the shift again; the level stays disarmed.
    advance_market(services, clock, JAN_22)
    services.market.cache.store_funds(snapshot_facts(JAN_22, 1.97, 1.99, 4.00, 4.02), clock())
    assert ((1 - 1.97 / 4.00) + (1 - 1.99 / 4.02)) / 2 * 100 - reference >= 3
    assert refresh(services) == 1
    assert refresh(services) == 0
    messages = [r["text"] for r in services.alerts.db.query("SELECT text FROM outbox ORDER BY id")]
    assert len(messages) == 2
    assert "The valuation gap on P/B moved 3 points or more since the last alert" in messages[-1]


def test_a_contradicted_newest_reading_fires_nothing_and_moves_no_reference(
    gap_rules: tuple[Services, dict[str, int]], clock: FakeClock
) -> None:
    """IWM 1.90 against VTWO 2.40 (21% apart): the gap would read 46.25%, a shift of 6.25 and above 45%;
    nothing fires, and the next trusted reading is measured from 40%, not from the contradicted one."""
    services, ids = gap_rules
    advance_market(services, clock, JAN_19)
    services.market.cache.store_funds(snapshot_facts(JAN_19, 1.90, 2.40, 4.00, 4.00), clock())
    contradicted = ((1 - 1.90 / 4.00) + (1 - 2.40 / 4.00)) / 2 * 100
    assert contradicted - 40 >= 3 and contradicted >= 45
    assert refresh(services) == 0
    assert current_observation(services.market.snapshot, services.now(), "GAP") is None
    assert services.alerts.rules.active.loc[ids["gap shift 3"], "reference"] == pytest.approx(40.0)
    # 22 Jan reads 42.5% on both pairs: 2.5 from 40 (no alert), though 3.75 from the contradicted 46.25.
    advance_market(services, clock, JAN_22)
    services.market.cache.store_funds(snapshot_facts(JAN_22, 2.30, 2.30, 4.00, 4.00), clock())
    assert abs(42.5 - contradicted) >= 3
    assert refresh(services) == 0
    assert services.alerts.rules.active.loc[ids["gap shift 3"], "last_value"] == pytest.approx(42.5)
    # 23 Jan reads 43.75%: 3.75 from 40, so the shift fires now (measured from 40, not from a skipped value).
    advance_market(services, clock, JAN_23)
    services.market.cache.store_funds(snapshot_facts(JAN_23, 2.25, 2.25, 4.00, 4.00), clock())
    assert refresh(services) == 1


def test_a_pegap_rule_is_judged_on_the_pe_gap(csv_services: Services, clock: FakeClock) -> None:
    """`pegap below 30%` set on a 35% P/E gap fires when a new snapshot reads 1 − 15.4/22 = 30%."""
    cache = csv_services.market.cache

    def pe(day: date, small: float, large: float) -> list[FundFacts]:  # SYNTHETIC P/E, twins equal
        return [
            FundFacts(s, day, None, None, None, "synthetic P/E for tests", v)
            for s, v in {"IWM": small, "VTWO": small, "IVV": large, "VOO": large}.items()
        ]

    cache.store_funds(pe(JAN_18, 14.3, 22.0), clock())
    current = current_observation(cache.snapshot(), clock(), "PEGAP")
    assert current is not None and current.value == pytest.approx((1 - 14.3 / 22.0) * 100)
    assert current_observation(cache.snapshot(), clock(), "GAP") is None  # no P/B at all
    csv_services.alerts.rules.add(1001, parse_rule("pegap below 30%"), current, clock())
    advance_market(csv_services, clock, JAN_19)
    cache.store_funds(pe(JAN_19, 15.4, 22.0), clock())
    assert refresh(csv_services) == 1
    (text,) = [r["text"] for r in csv_services.alerts.db.query("SELECT text FROM outbox")]
    assert f"The valuation gap on P/E fell to 30.0% or less: <b>{(1 - 15.4 / 22.0) * 100:.1f}%</b>" in text


# --- /alert: what the reply says about the readings ---------------------------------------------------


async def test_alert_gap_counts_the_trusted_readings_and_previews_over_them(
    csv_services: Services, clock: FakeClock
) -> None:
    """Three snapshots, one contradicted: two trusted readings; the preview runs over them."""
    cache = csv_services.market.cache
    cache.store_funds(snapshot_facts(date(2023, 12, 18), 2.40, 2.40, 4.00, 4.00), clock())  # 40%
    cache.store_funds(snapshot_facts(date(2024, 1, 11), 2.00, 2.80, 4.00, 4.00), clock())  # contradicted
    cache.store_funds(snapshot_facts(JAN_18, 2.10, 2.10, 4.00, 4.00), clock())  # 47.5%
    text = plain((await ask(csv_services, "/alert gap shift 3")).text)
    assert "Now: 47.5% (close, 18 Jan 2024)" in text
    assert (
        "2 trusted P/B readings recorded, the last on 18 Jan 2024; it is judged once on each new one." in text
    )
    assert "With CSV data the readings are the as_of rows" in text
    assert (
        "Over the last year (on its recorded readings since 18 Dec 2023) it would have fired 1 time at "
        "the close: 18 Jan 2024." in text
    )
    assert (
        "judged once on each new reading of the two fund pairs, never on one their twins contradict" in text
    )


async def test_alert_pegap_without_any_pe_says_no_recorded_history_yet(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/alert pegap above 40%")).text)
    assert "Alert #1 set: pegap above 40% · close · band 1%" in text
    assert "No trusted P/E reading is recorded yet." in text
    assert "Over the last year: no recorded history yet" in text
