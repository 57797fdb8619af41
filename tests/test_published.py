"""market/published.py: the bundled valuation gaps others published, each with its citation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from market import published
from market.metrics import valuation_gap


def test_every_bundled_reading_carries_a_date_a_citation_and_a_plausible_gap():
    readings = published.published()
    assert len(readings) >= 5
    assert {reading.measure for reading in readings} == {"pb", "pe"}
    for reading in readings:
        assert date(1990, 1, 1) <= reading.as_of <= date.today()
        assert reading.url.startswith(("http://", "https://"))
        assert reading.who and reading.where and reading.basis
        assert -1.0 < reading.gap < 1.0


def test_a_reading_given_as_multiples_has_the_gap_of_those_multiples():
    """The Motley Fool, Aug 2025: the average Russell 2000 component at 1.8x book, the S&P 500's at 4.9x."""
    fool = next(r for r in published.of("pb") if r.as_of == date(2025, 8, 8))
    assert (fool.small, fool.large) == (1.8, 4.9)
    assert fool.gap == pytest.approx(valuation_gap(1.8, 4.9))
    assert fool.gap == pytest.approx(1 - 1.8 / 4.9)  # 63.3%


def test_a_relative_multiple_of_44_percent_is_a_56_percent_discount():
    """Fundstrat, 22 Jan 2024: the Russell 2000's P/B "only 44% of the S&P 500's"."""
    lee = next(r for r in published.of("pb") if r.as_of == date(2024, 1, 22))
    assert lee.relative == pytest.approx(0.44)
    assert lee.gap == pytest.approx(0.56)
    assert "Fundstrat" in lee.who


def test_readings_come_oldest_first_and_by_measure():
    readings = published.published()
    assert [r.as_of for r in readings] == sorted(r.as_of for r in readings)
    assert all(r.measure == "pe" for r in published.of("pe"))


HEADER = "measure,as_of,small,large,relative,who,where,url,basis\n"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("pb,2024-01-22,,,0.44,Lee,MW,https://x,,\n", "basis is empty"),
        ("ps,2024-01-22,,,0.44,Lee,MW,https://x,b\n", "measure 'ps'"),
        ("pb,2024-01-22,1.8,,,Lee,MW,https://x,b\n", "both multiples or neither"),
        ("pb,2024-01-22,1.8,4.9,0.37,Lee,MW,https://x,b\n", "not both"),
        ("pb,2024-01-22,,,,Lee,MW,https://x,b\n", "not plausible"),
        ("pb,2024-01-22,-1.8,4.9,,Lee,MW,https://x,b\n", "positive"),
        ("pb,22 Jan 2024,,,0.44,Lee,MW,https://x,b\n", "isoformat"),
    ],
)
def test_a_row_that_does_not_hold_is_refused_with_its_line(tmp_path: Path, row: str, problem: str):
    path = tmp_path / "published_gaps.csv"
    path.write_text(HEADER + "pb,2024-01-01,1,2,,a,b,https://y,c\n" + row)
    with pytest.raises(ValueError, match="line 3") as caught:
        published.parse(path)
    assert problem in str(caught.value)
