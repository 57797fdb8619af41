"""market/valuation.py: the gap from two fund pairs that check each other. Every multiple here is
synthetic (no public history of the funds' holdings P/B or P/E is bundled); expected gaps are computed
in the test from the multiples it sets."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from market.metrics import gap_change
from market.valuation import PAIRS, TWIN_TOLERANCE, readings, trusted, trusted_series

DAY = date(2024, 1, 18)


def funds(*rows: tuple[str, date, float | None, float | None]) -> pd.DataFrame:
    """A MarketSnapshot.funds frame from (symbol, as_of, price_to_book, price_to_earnings) rows."""
    return pd.DataFrame(
        [
            {"symbol": s, "as_of": d, "price_to_book": pb, "price_to_earnings": pe, "source": "synthetic"}
            for s, d, pb, pe in rows
        ]
    )


def four(day: date, iwm: float, vtwo: float, ivv: float, voo: float, pe: float | None = None):
    return [("IWM", day, iwm, pe), ("VTWO", day, vtwo, pe), ("IVV", day, ivv, pe), ("VOO", day, voo, pe)]


def test_the_gap_is_the_mean_of_the_two_pairs_when_twins_agree():
    (reading,) = readings(funds(*four(DAY, 1.90, 1.95, 4.50, 4.40)))
    iwm_ivv, vtwo_voo = 1 - 1.90 / 4.50, 1 - 1.95 / 4.40
    assert [p.gap for p in reading.pairs] == pytest.approx([iwm_ivv, vtwo_voo])
    assert reading.gap == pytest.approx((iwm_ivv + vtwo_voo) / 2)
    assert (reading.problem, reading.checked, reading.as_of) == (None, True, DAY)
    assert [p.pair.family for p in reading.pairs] == [pair.family for pair in PAIRS]


def test_twins_that_disagree_beyond_the_tolerance_leave_the_gap_unknown():
    apart = 1.90 * (1 + TWIN_TOLERANCE) * 1.05  # VTWO 15.5% above IWM
    (reading,) = readings(funds(*four(DAY, 1.90, apart, 4.50, 4.40)))
    assert reading.gap is None
    assert reading.problem is not None and "IWM's P/B 1.90 and VTWO's" in reading.problem
    assert trusted([reading]) == []
    # Within the tolerance it stands.
    (close,) = readings(funds(*four(DAY, 1.90, 1.90 * (1 + TWIN_TOLERANCE) * 0.99, 4.50, 4.40)))
    assert close.gap is not None


def test_one_pair_alone_stands_unchecked():
    (reading,) = readings(funds(("IWM", DAY, 1.9, None), ("IVV", DAY, 4.5, None)))
    assert reading.gap == pytest.approx(1 - 1.9 / 4.5)
    assert (reading.checked, reading.problem) == (False, None)


def test_a_missing_field_is_no_reading():
    """A fund whose P/B is missing or unusable pairs with nothing; P/E readings are separate."""
    rows = four(DAY, 1.9, 1.9, 4.5, 4.5, pe=None)
    rows[0] = ("IWM", DAY, None, None)
    rows[1] = ("VTWO", DAY, float("nan"), None)
    assert readings(funds(*rows)) == []  # neither small-cap fund has a P/B: no pair, no reading
    assert readings(funds(*rows), "pe") == []
    rows[1] = ("VTWO", DAY, 1.9, None)
    (reading,) = readings(funds(*rows))
    assert [p.pair.small for p in reading.pairs] == ["VTWO"]
    assert reading.gap == pytest.approx(1 - 1.9 / 4.5)


def test_a_jump_with_no_twin_to_confirm_it_is_refused():
    before = DAY - timedelta(days=1)
    pair = [("IWM", before, 2.00, None), ("IVV", before, 4.50, None)]
    # IWM's P/B up 40% overnight, and no VTWO reading to say whether the market did it: a data error.
    (_, jumped) = readings(funds(*pair, ("IWM", DAY, 2.80, None), ("IVV", DAY, 4.50, None)))
    assert jumped.gap is None
    assert jumped.problem is not None and "IWM's P/B moved +40%" in jumped.problem
    # Up 20%: within the limit of a day's move.
    (_, moved) = readings(funds(*pair, ("IWM", DAY, 2.40, None), ("IVV", DAY, 4.50, None)))
    assert moved.gap == pytest.approx(1 - 2.40 / 4.50)


def test_twins_that_moved_together_confirm_the_move():
    before = DAY - timedelta(days=1)
    base = four(before, 2.00, 2.00, 4.50, 4.50)
    # IWM's P/B up 40% while VTWO's stays: the twins disagree.
    (_, alone) = readings(funds(*base, *four(DAY, 2.80, 2.00, 4.50, 4.50)))
    assert alone.gap is None and "disagree" in (alone.problem or "")
    # Both small-cap twins up ~40% (a book write-down, say): they agree, and the move stands.
    (_, seen) = readings(funds(*base, *four(DAY, 2.80, 2.75, 4.50, 4.50)))
    assert seen.problem is None
    assert seen.gap == pytest.approx(((1 - 2.80 / 4.50) + (1 - 2.75 / 4.50)) / 2)


def test_a_jump_after_a_long_silence_is_not_judged_as_one_days_move():
    old = DAY - timedelta(days=60)
    rows = [
        ("IWM", old, 2.0, None),
        ("IVV", old, 4.5, None),
        ("IWM", DAY, 2.8, None),
        ("IVV", DAY, 4.5, None),
    ]
    (_, later) = readings(funds(*rows))
    assert later.problem is None and later.checked is False
    assert later.gap == pytest.approx(1 - 2.8 / 4.5)


def test_price_to_earnings_gives_a_gap_of_its_own():
    rows = [
        ("IWM", DAY, 1.9, 15.0),
        ("VTWO", DAY, 1.9, 15.6),
        ("IVV", DAY, 4.5, 24.0),
        ("VOO", DAY, 4.5, 24.4),
    ]
    (reading,) = readings(funds(*rows), "pe")
    assert reading.measure == "pe"
    assert reading.gap == pytest.approx(((1 - 15.0 / 24.0) + (1 - 15.6 / 24.4)) / 2)


def test_a_stale_snapshot_is_not_paired_with_a_fresh_one():
    rows = [("IWM", DAY - timedelta(days=30), 1.9, None), ("IVV", DAY, 4.5, None)]
    assert readings(funds(*rows)) == []


def test_gap_change_over_trusted_readings_skips_a_contradicted_one():
    week = DAY - timedelta(days=7)
    history = readings(
        funds(
            *four(week, 2.0, 2.0, 4.0, 4.0),
            *four(DAY - timedelta(days=6), 2.0, 2.6, 4.0, 4.0),
            *four(DAY, 1.8, 1.8, 4.0, 4.0),
        )
    )
    assert [r.gap is None for r in history] == [False, True, False]
    points = trusted(history)
    assert gap_change(points, 7) == pytest.approx((1 - 1.8 / 4.0) - (1 - 2.0 / 4.0))
    series = trusted_series(history)
    assert list(series.index.date) == [week, DAY]
