"""`capgap replay` judges gap rules on the price-to-book history of funds.csv, trusting only readings the
twin funds confirm, and refuses them plainly when there is none. The fund figures here are SYNTHETIC (the
shared history has no P/B); the prices are the real CSV files."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, capgap

LARGE = 4.00  # IVV's and VOO's P/B on every synthetic date
# SYNTHETIC small-cap P/B by date (IWM and VTWO alike), all Thursdays that were NYSE sessions.
READINGS = {
    date(2023, 6, 1): 2.40,
    date(2023, 6, 8): 2.36,
    date(2023, 6, 15): 2.22,
    date(2023, 6, 22): 2.20,
    date(2023, 6, 29): 2.06,
}
# On 6 Jul IWM reads 1.00 and VTWO 2.00: twins 50% apart, so that day's reading (a 75% gap) is not trusted.
CONTRADICTED = date(2023, 7, 6)


def gap_points(small: float) -> float:
    return (1 - small / LARGE) * 100


@pytest.fixture
def market(tmp_path: Path, shared_data: Path) -> Path:
    directory = tmp_path / "market"
    directory.mkdir()
    for name in ("RUT", "GSPC", "IWM", "SPY", "VTWO", "VOO", "IVV"):
        shutil.copy(shared_data / f"{name}_daily.csv", directory)
    lines = ["symbol,as_of,expense_ratio,total_assets,price_to_book,source"]
    for day, small in READINGS.items():
        for symbol, pb in (("IWM", small), ("VTWO", small), ("IVV", LARGE), ("VOO", LARGE)):
            lines.append(f"{symbol},{day},,,{pb},synthetic test figures")
    for symbol, pb in (("IWM", 1.00), ("VTWO", 2.00), ("IVV", LARGE), ("VOO", LARGE)):
        lines.append(f"{symbol},{CONTRADICTED},,,{pb},synthetic test figures")
    (directory / "funds.csv").write_text("\n".join(lines) + "\n")
    return directory


def fired_dates(stdout: str) -> list[date]:
    return [date.fromisoformat(line.split()[0]) for line in stdout.splitlines() if line.strip()]


def expected_shift(points: float) -> list[date]:
    """`gap shift N` created on 2 Jun (at the 1 Jun reading): fires when a trusted reading is N points or
    more from the last one it fired on (or the one it started from)."""
    days = sorted(READINGS)
    reference, fired = gap_points(READINGS[days[0]]), []
    for day in days[1:]:
        value = gap_points(READINGS[day])
        if abs(value - reference) >= points:
            fired.append(day)
            reference = value
    return fired


def test_a_gap_shift_rule_fires_on_the_trusted_readings_and_never_on_a_contradicted_one(
    tmp_path: Path, market: Path
) -> None:
    result = capgap(
        ["replay", "--from", "2023-06-05", "--to", "2023-07-31", "gap shift 3", "gap above 47%"],
        tmp_path,
        CAPGAP_MARKET=f"csv:{market}",
    )
    assert result.returncode == 0, result.stderr
    fired = fired_dates(result.stdout)
    above = [d for d in sorted(READINGS) if gap_points(READINGS[d]) >= 47][:1]  # armed at 40%: the first
    assert sorted(fired) == sorted(expected_shift(3) + above)
    assert expected_shift(3) == [date(2023, 6, 15), date(2023, 6, 29)]  # 44.5% and 48.5%
    assert CONTRADICTED not in fired


def test_gap_rules_without_a_price_to_book_history_are_refused_in_one_line(
    tmp_path: Path, shared_data: Path
) -> None:
    result = capgap(
        ["replay", "--from", "2023-06-05", "--to", "2023-07-31", "gap shift 3"],
        tmp_path,
        CAPGAP_MARKET=f"csv:{shared_data}",
    )
    line = assert_one_line_error(result)
    assert line.startswith("capgap: gap rules need a price-to-book history:")
    assert "funds.csv" in line
