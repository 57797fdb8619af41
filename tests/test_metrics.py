"""Metrics checked against real Yahoo history (expected figures worked out here by hand from the CSV files)
and against tiny hand-built series for the edge cases."""

from __future__ import annotations

import csv
import math
from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.metrics import (
    PERIODS,
    FeeCost,
    GapPoint,
    HighMark,
    base_date,
    drawdown,
    fee_cost,
    gap_change,
    gap_reading_near,
    high_mark,
    moving_average,
    parse_period,
    period_return,
    ratio_history,
    ratio_standing,
    rebased,
    relative_performance,
    returns_table,
    target_distance,
    valuation_gap,
)
from testing.world import SHARED_DATA

AS_OF = "2024-01-18"  # a Thursday


# --- independent readers of the real history ----------------------------------------------------------


@cache
def csv_closes(stem: str) -> tuple[tuple[str, float], ...]:
    """(ISO date, close) rows of ``<stem>_daily.csv``, read with the csv module; blank closes skipped."""
    with (SHARED_DATA / f"{stem}_daily.csv").open(newline="") as handle:
        return tuple((row["date"], float(row["close"])) for row in csv.DictReader(handle) if row["close"])


def close_on_or_before(stem: str, iso: str) -> tuple[str, float]:
    """The last (date, close) on or before ``iso``; ISO dates compare correctly as strings."""
    return [row for row in csv_closes(stem) if row[0] <= iso][-1]


def by_hand_return(stem: str, as_of: str, target: str) -> float:
    return close_on_or_before(stem, as_of)[1] / close_on_or_before(stem, target)[1] - 1.0


@cache
def series(stem: str) -> pd.Series:
    frame = pd.read_csv(SHARED_DATA / f"{stem}_daily.csv", parse_dates=["date"], index_col="date")
    return frame["close"]


def closes(values: dict[str, float]) -> pd.Series:
    """A tiny close series from {"YYYY-MM-DD": close}."""
    return pd.Series(list(values.values()), index=pd.DatetimeIndex(list(values)), dtype=float)


# --- real history --------------------------------------------------------------------------------------


def test_spot_checks_of_the_data_hold():
    """The data files are the ones SOURCES.md describes (guards every real-data figure below)."""
    assert close_on_or_before("RUT", "2023-12-29") == ("2023-12-29", 2027.069946)
    assert close_on_or_before("GSPC", "2023-12-29")[1] == pytest.approx(4769.83, abs=0.005)


# Target dates worked out on a calendar: 3Y lands on MLK day 2021-01-18 (closed), 10Y on a Saturday.
REAL_TARGETS = {
    "1d": "2024-01-17",
    "1w": "2024-01-11",
    "1m": "2023-12-18",
    "ytd": "2023-12-31",
    "1y": "2023-01-18",
    "3y": "2021-01-18",
    "5y": "2019-01-18",
    "10y": "2014-01-18",
}


def test_rut_10y_return_as_of_2024_01_18_uses_friday_2014_01_17_as_base():
    """10Y as of 2024-01-18: the target 2014-01-18 is a Saturday, so the base is Friday's close."""
    assert close_on_or_before("RUT", "2014-01-18")[0] == "2014-01-17"
    expected = by_hand_return("RUT", AS_OF, "2014-01-18")
    assert period_return(series("RUT"), "10y", end=pd.Timestamp(AS_OF)) == pytest.approx(expected, rel=1e-12)
    assert base_date(pd.DatetimeIndex(series("RUT").index), pd.Timestamp(AS_OF), "10y") == pd.Timestamp(
        "2014-01-17"
    )


def test_rut_ytd_as_of_2024_01_18_is_measured_from_the_2023_12_29_close():
    """YTD compares with the last close of the previous year (2027.07 on 2023-12-29)."""
    expected = close_on_or_before("RUT", AS_OF)[1] / 2027.069946 - 1.0
    assert period_return(series("RUT"), "ytd", end=date(2024, 1, 18)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("stem", ["RUT", "GSPC", "IWM", "SPY"])
def test_returns_table_on_real_history_matches_the_convention_by_hand(stem: str):
    """Every standard period as of 2024-01-18, including a base on a holiday (3Y) and a weekend (10Y)."""
    table = returns_table(series(stem), end=pd.Timestamp(AS_OF))
    assert list(table) == list(PERIODS)
    for period, target in REAL_TARGETS.items():
        assert table[period] == pytest.approx(by_hand_return(stem, AS_OF, target), rel=1e-12), period


def test_rut_highest_close_before_2024_is_2442_74_on_2021_11_08():
    mark = high_mark(series("RUT"), end=date(2023, 12, 31))
    assert mark is not None
    assert mark.high == pytest.approx(2442.74, abs=0.005)
    assert mark.high_date == date(2021, 11, 8)
    assert (mark.last_date, mark.last) == (date(2023, 12, 29), pytest.approx(2027.07, abs=0.005))
    assert mark.below == pytest.approx(1 - 2027.069946 / 2442.73999, rel=1e-12)


def test_rut_highest_close_in_the_whole_file_is_2718_77_on_2026_01_22():
    mark = high_mark(series("RUT"))
    assert mark is not None
    assert (mark.high_date, mark.high) == (date(2026, 1, 22), pytest.approx(2718.77, abs=0.005))
    top = max(close for _, close in csv_closes("RUT"))
    assert mark.high == top


def test_rut_vs_gspc_relative_10y_as_of_2024_01_18_in_points():
    """Small minus large 10Y return, each from its own close on or before 2014-01-18, in points."""
    expected = (
        by_hand_return("RUT", AS_OF, "2014-01-18") - by_hand_return("GSPC", AS_OF, "2014-01-18")
    ) * 100
    got = relative_performance(series("RUT"), series("GSPC"), "10y", end=pd.Timestamp(AS_OF))
    assert got is not None
    assert got == pytest.approx(expected, rel=1e-12)
    assert got < -90  # small caps lagged by about 95 points over that decade


def test_rut_to_gspc_ratio_standing_over_10_years_as_of_2024_01_18():
    """The ratio's percentile, low and high over the window that starts at the 10Y base date."""
    rut = dict(csv_closes("RUT"))
    gspc = dict(csv_closes("GSPC"))
    window = sorted(d for d in rut.keys() & gspc.keys() if "2014-01-17" <= d <= AS_OF)
    ratios = [rut[d] / gspc[d] for d in window]
    today = ratios[-1]
    standing = ratio_standing(series("RUT"), series("GSPC"), years=10, end=pd.Timestamp(AS_OF))
    assert standing is not None
    assert standing.since == date(2014, 1, 17)
    assert standing.ratio == pytest.approx(today, rel=1e-12)
    assert standing.percentile == pytest.approx(100 * sum(r <= today for r in ratios) / len(ratios))
    assert standing.low == pytest.approx(min(ratios), rel=1e-12)
    assert standing.low_date == date.fromisoformat(window[ratios.index(min(ratios))])
    assert standing.high == pytest.approx(max(ratios), rel=1e-12)
    assert standing.high_date == date.fromisoformat(window[ratios.index(max(ratios))])


def test_ratio_standing_over_all_shared_history_starts_with_the_rut_file():
    standing = ratio_standing(series("RUT"), series("GSPC"))
    assert standing is not None
    assert standing.since == date(1987, 9, 10)


def test_target_distance_translates_a_rut_level_into_an_iwm_price_on_the_same_day():
    """2442.74 (the 2021 high) as of 2024-01-18, and its IWM equivalent from that day's IWM/RUT ratio."""
    rut_close = close_on_or_before("RUT", AS_OF)[1]
    iwm_close = close_on_or_before("IWM", AS_OF)[1]
    distance = target_distance(2442.74, series("RUT"), series("IWM"), "IWM", end=pd.Timestamp(AS_OF))
    assert distance is not None
    assert distance.last == rut_close
    assert distance.change_needed == pytest.approx(2442.74 / rut_close - 1, rel=1e-12)
    assert distance.etf_symbol == "IWM"
    assert distance.etf_price == pytest.approx(2442.74 * iwm_close / rut_close, rel=1e-12)


def test_target_distance_leaves_out_the_etf_price_when_its_history_is_stale():
    """IWM closes in the file end 2024-09-12; as of 2026 that ratio is far too old to use."""
    distance = target_distance(3000.0, series("RUT"), series("IWM"), "IWM")
    assert distance is not None
    assert distance.last == csv_closes("RUT")[-1][1]
    assert (distance.etf_symbol, distance.etf_price) == (None, None)


def test_10y_return_needs_history_reaching_back_to_the_target_date():
    """^RUT starts 1987-09-10: 10Y exists as of 1997-09-10 (target = first day) but not 1997-09-09."""
    assert period_return(series("RUT"), "10y", end=date(1997, 9, 9)) is None
    expected = by_hand_return("RUT", "1997-09-10", "1987-09-10")
    assert period_return(series("RUT"), "10y", end=date(1997, 9, 10)) == pytest.approx(expected, rel=1e-12)


# --- parse_period --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d", "1d"),
        ("1W", "1w"),
        (" YTD ", "ytd"),
        ("10Y", "10y"),
        ("3m", "3m"),
        ("6M", "6m"),
        ("2020-03-23", date(2020, 3, 23)),
        ("2024-02-29", date(2024, 2, 29)),
    ],
)
def test_parse_period_accepts_the_standard_periods_any_case_and_iso_dates(text: str, expected: object):
    assert parse_period(text) == expected


@pytest.mark.parametrize("text", ["", "2y", "1mo", "week", "ytd!", "2023-02-29", "2024-1-5", "20240105"])
def test_parse_period_returns_none_for_text_it_does_not_understand(text: str):
    assert parse_period(text) is None


def test_base_date_rejects_an_unknown_period_string():
    with pytest.raises(ValueError, match="unknown period"):
        base_date(pd.DatetimeIndex(["2024-01-02"]), pd.Timestamp("2024-01-02"), "fortnight")


# --- base dates on tiny series -------------------------------------------------------------------------


def test_1d_on_a_monday_compares_with_fridays_close():
    s = closes({"2024-01-04": 100.0, "2024-01-05": 110.0, "2024-01-08": 121.0})
    assert period_return(s, "1d") == pytest.approx(0.10)


def test_1w_base_on_a_holiday_uses_the_close_before_it():
    """1W as of Thu 2024-07-11 targets Thu 2024-07-04 (closed), so the base is 2024-07-03."""
    s = closes({"2024-07-02": 90.0, "2024-07-03": 100.0, "2024-07-05": 101.0, "2024-07-11": 105.0})
    assert base_date(pd.DatetimeIndex(s.index), pd.Timestamp("2024-07-11"), "1w") == pd.Timestamp(
        "2024-07-03"
    )
    assert period_return(s, "1w") == pytest.approx(0.05)


def test_as_of_a_saturday_counts_back_from_fridays_close():
    """1D as of Saturday compares Friday with Thursday, not Friday with itself."""
    s = closes({"2024-01-04": 100.0, "2024-01-05": 102.0})
    assert period_return(s, "1d", end=date(2024, 1, 6)) == pytest.approx(0.02)


def test_1y_from_feb_29_targets_feb_28():
    s = closes({"2023-02-27": 80.0, "2023-02-28": 100.0, "2023-03-01": 90.0, "2024-02-29": 120.0})
    assert base_date(pd.DatetimeIndex(s.index), pd.Timestamp("2024-02-29"), "1y") == pd.Timestamp(
        "2023-02-28"
    )
    assert period_return(s, "1y") == pytest.approx(0.20)


@pytest.mark.parametrize(
    ("as_of", "period", "base"),
    [
        ("2023-03-31", "1m", "2023-02-28"),  # clipped to the shorter month
        ("2024-03-31", "1m", "2024-02-29"),  # leap year
        ("2024-05-31", "3m", "2024-02-29"),
        ("2024-08-31", "6m", "2024-02-29"),
        ("2024-12-31", "6m", "2024-06-30"),
        ("2024-01-15", "1m", "2023-12-15"),  # across the year end
    ],
)
def test_month_spans_clip_the_day_to_the_end_of_the_shorter_month(as_of: str, period: str, base: str):
    index = pd.date_range("2022-12-01", "2024-12-31", freq="D")
    assert base_date(index, pd.Timestamp(as_of), period) == pd.Timestamp(base)


def test_ytd_on_the_first_trading_day_compares_with_the_last_close_of_last_year():
    s = closes({"2023-12-28": 95.0, "2023-12-29": 100.0, "2024-01-02": 99.0})
    assert period_return(s, "ytd") == pytest.approx(-0.01)


def test_ytd_is_none_when_the_history_starts_in_the_current_year():
    s = closes({"2024-01-02": 100.0, "2024-01-03": 101.0})
    assert period_return(s, "ytd") is None


def test_too_short_history_gives_none_rather_than_a_later_base():
    s = closes({"2023-06-01": 100.0, "2024-01-18": 150.0})
    assert base_date(pd.DatetimeIndex(s.index), pd.Timestamp("2024-01-18"), "1y") is None
    assert period_return(s, "1y") is None
    assert period_return(s, "1m") == pytest.approx(0.5)  # 2023-12-18 -> last close on or before: 2023-06-01


def test_a_single_row_has_no_period_returns_but_has_a_high():
    s = closes({"2024-01-18": 100.0})
    assert all(value is None for value in returns_table(s).values())
    assert period_return(s, date(2024, 1, 18)) == 0.0
    assert high_mark(s) == HighMark(100.0, date(2024, 1, 18), 100.0, date(2024, 1, 18), 0.0)


def test_nan_rows_are_skipped_for_both_the_base_and_the_latest_close():
    s = closes({"2024-01-04": 100.0, "2024-01-05": math.nan, "2024-01-08": 110.0, "2024-01-09": math.nan})
    # Latest valid close is 2024-01-08; its 1D target 2024-01-07 falls back past the NaN Friday.
    assert period_return(s, "1d") == pytest.approx(0.10)
    mark = high_mark(s)
    assert mark is not None
    assert mark.last_date == date(2024, 1, 8)


def test_everything_is_none_when_end_is_before_the_first_date():
    s = closes({"2024-01-04": 100.0, "2024-01-05": 101.0})
    other = closes({"2024-01-04": 50.0, "2024-01-05": 51.0})
    end = date(2024, 1, 3)
    assert period_return(s, "1d", end=end) is None
    assert high_mark(s, end=end) is None
    assert relative_performance(s, other, "1d", end=end) is None
    assert ratio_standing(s, other, end=end) is None
    assert target_distance(120.0, s, other, "X", end=end) is None
    assert base_date(pd.DatetimeIndex(s.index), pd.Timestamp(end), "1d") is None


def test_end_excludes_later_closes():
    s = closes({"2024-01-04": 100.0, "2024-01-05": 200.0, "2024-01-08": 400.0})
    assert period_return(s, "1d", end=pd.Timestamp("2024-01-05 16:00")) == pytest.approx(1.0)
    mark = high_mark(s, end=date(2024, 1, 5))
    assert mark is not None
    assert mark.high == 200.0


def test_since_a_date_uses_the_last_close_on_or_before_it():
    s = closes({"2024-01-05": 100.0, "2024-01-08": 90.0, "2024-01-09": 120.0})
    assert period_return(s, date(2024, 1, 7)) == pytest.approx(0.20)  # a Sunday: Friday's close
    assert period_return(s, "2024-01-08") == pytest.approx(120 / 90 - 1)


def test_since_a_date_is_none_before_the_history_or_after_the_latest_close():
    s = closes({"2024-01-05": 100.0, "2024-01-08": 90.0})
    assert period_return(s, date(2024, 1, 4)) is None
    assert period_return(s, date(2024, 1, 9)) is None


def test_high_mark_reports_the_first_day_of_a_repeated_high():
    s = closes({"2024-01-04": 100.0, "2024-01-05": 120.0, "2024-01-08": 120.0, "2024-01-09": 90.0})
    assert high_mark(s) == HighMark(120.0, date(2024, 1, 5), 90.0, date(2024, 1, 9), 0.25)


# --- relative performance and ratio standing ----------------------------------------------------------


def test_relative_performance_is_the_difference_in_percentage_points():
    """+74% against +174% is -100 points."""
    small = closes({"2020-01-02": 100.0, "2024-01-02": 174.0})
    large = closes({"2020-01-02": 100.0, "2024-01-02": 274.0})
    assert relative_performance(small, large, "ytd") == pytest.approx(-100.0)


def test_relative_performance_measures_both_as_of_the_last_shared_date():
    """A close only one series has yet (a day ahead) does not enter the comparison."""
    small = closes({"2024-01-04": 100.0, "2024-01-05": 110.0, "2024-01-08": 500.0})
    large = closes({"2024-01-04": 100.0, "2024-01-05": 105.0})
    assert relative_performance(small, large, "1d") == pytest.approx(5.0)


def test_relative_performance_is_none_when_either_history_is_too_short():
    small = closes({"2023-01-03": 100.0, "2024-01-05": 110.0})
    large = closes({"2023-06-01": 100.0, "2024-01-05": 105.0})
    assert relative_performance(small, large, "1y") is None


def test_ratio_standing_percentile_counts_ties_as_at_or_below():
    small = closes({"2024-01-02": 1.0, "2024-01-03": 3.0, "2024-01-04": 2.0, "2024-01-05": 2.0})
    large = closes({"2024-01-02": 1.0, "2024-01-03": 1.0, "2024-01-04": 1.0, "2024-01-05": 1.0})
    standing = ratio_standing(small, large)
    assert standing is not None
    assert standing.ratio == 2.0
    assert standing.percentile == pytest.approx(75.0)
    assert (standing.low, standing.low_date) == (1.0, date(2024, 1, 2))
    assert (standing.high, standing.high_date) == (3.0, date(2024, 1, 3))
    assert standing.since == date(2024, 1, 2)


def test_ratio_standing_uses_only_dates_both_series_have():
    small = closes({"2024-01-02": 2.0, "2024-01-03": 100.0, "2024-01-04": 4.0})
    large = closes({"2024-01-02": 1.0, "2024-01-04": 2.0})
    standing = ratio_standing(small, large)
    assert standing is not None
    assert (standing.low, standing.high, standing.percentile) == (2.0, 2.0, 100.0)


def test_ratio_standing_is_none_when_the_window_is_longer_than_the_shared_history():
    small = closes({"2020-06-01": 1.0, "2024-01-02": 2.0})
    large = closes({"2020-06-01": 1.0, "2024-01-02": 1.0})
    assert ratio_standing(small, large, years=5) is None
    standing = ratio_standing(small, large, years=3)
    assert standing is not None
    assert standing.since == date(2020, 6, 1)


def test_ratio_standing_rejects_a_window_shorter_than_a_year():
    s = closes({"2024-01-02": 1.0})
    with pytest.raises(ValueError, match="years"):
        ratio_standing(s, s, years=0)


# --- target distance -----------------------------------------------------------------------------------


def test_target_distance_is_negative_when_the_level_is_below_the_last_close():
    index = closes({"2024-01-04": 2000.0, "2024-01-05": 2100.0})
    distance = target_distance(1890.0, index)
    assert distance is not None
    assert distance.change_needed == pytest.approx(-0.10)
    assert (distance.etf_symbol, distance.etf_price) == (None, None)


def test_target_distance_accepts_an_etf_ratio_up_to_ten_trading_days_old():
    days = pd.bdate_range("2024-01-01", periods=20)
    index = pd.Series(np.full(20, 2000.0), index=days)
    for age, expected in [(10, 200.0), (11, None)]:
        etf = pd.Series([200.0], index=[days[-1 - age]])
        distance = target_distance(2000.0, index, etf, "IWM")
        assert distance is not None
        assert distance.etf_price == expected, age
        assert distance.etf_symbol == ("IWM" if expected else None)


def test_target_distance_ignores_etf_closes_after_end():
    index = closes({"2024-01-04": 2000.0, "2024-01-05": 2000.0})
    etf = closes({"2024-01-04": 200.0, "2024-01-05": 100.0})
    distance = target_distance(2200.0, index, etf, "IWM", end=date(2024, 1, 4))
    assert distance is not None
    assert distance.etf_price == pytest.approx(220.0)


@pytest.mark.parametrize("level", [0.0, -5.0, math.nan, math.inf])
def test_target_distance_rejects_a_level_that_is_not_a_positive_number(level: float):
    with pytest.raises(ValueError, match="positive"):
        target_distance(level, closes({"2024-01-04": 2000.0}))


# --- fee cost ------------------------------------------------------------------------------------------


def test_fee_cost_closed_form_with_growth():
    """IWM's 0.19% on 10,000 for 10 years at 7%: value = 10000 × (1.07 × 0.9981)^10."""
    result = fee_cost(10_000, 10, 0.0019)
    assert result.final_value == pytest.approx(10_000 * (1.07 * 0.9981) ** 10, rel=1e-12)
    assert result.final_value_without_fee == pytest.approx(10_000 * 1.07**10, rel=1e-12)
    assert result.cost == pytest.approx(result.final_value_without_fee - result.final_value)
    # The first year's fee comes out of the grown balance: 10,000 × 1.07 × 0.19%, what one year costs.
    assert result.first_year_fee == pytest.approx(10_000 * 1.07 * 0.0019)
    assert result.first_year_fee == pytest.approx(fee_cost(10_000, 1, 0.0019).cost)
    assert result.expense_ratio == 0.0019


def test_fee_cost_without_growth_is_the_fee_compounded_on_the_balance():
    result = fee_cost(1000, 2, 0.01, gross_return=0.0)
    assert result.final_value == pytest.approx(1000 * 0.99**2)
    assert result.cost == pytest.approx(1000 - 980.1)


def test_fee_cost_of_a_free_fund_or_no_time_or_no_money_is_zero():
    assert fee_cost(1000, 5, 0.0).cost == 0.0
    assert fee_cost(1000, 0, 0.0019) == FeeCost(
        0.0019, pytest.approx(1000 * 1.07 * 0.0019), 1000.0, 1000.0, 0.0
    )
    assert fee_cost(0, 5, 0.0019).cost == 0.0


def test_fee_cost_allows_fractional_years():
    result = fee_cost(1000, 0.5, 0.01, gross_return=0.0)
    assert result.final_value == pytest.approx(1000 * math.sqrt(0.99))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 5, 0.001), "amount must not be negative"),
        ((1000, -1, 0.001), "years must not be negative"),
        ((1000, 5, -0.001), "expense ratio must not be negative"),
        ((1000, 5, 0.19), "expense ratio must be a fraction below"),
        ((1000, 5, 0.05), "expense ratio must be a fraction below"),
        ((math.nan, 5, 0.001), "amount must be a finite number"),
        ((1000, math.inf, 0.001), "years must be a finite number"),
        ((1000, 5, 0.001, -1.0), "gross return must be above -1"),
        ((1000, 5, 0.001, math.nan), "gross return must be a finite number"),
    ],
)
def test_fee_cost_rejects_impossible_inputs_with_a_readable_message(args: tuple[float, ...], message: str):
    with pytest.raises(ValueError, match=message):
        fee_cost(*args)


# --- valuation gap -------------------------------------------------------------------------------------


def test_valuation_gap_is_the_small_cap_discount_on_price_to_book():
    assert valuation_gap(2.0, 4.0) == pytest.approx(0.5)
    assert valuation_gap(3.0, 3.0) == 0.0
    assert valuation_gap(6.0, 3.0) == pytest.approx(-1.0)  # small caps at a premium


@pytest.mark.parametrize(
    ("small", "large"),
    [(None, 4.0), (2.0, None), (0.0, 4.0), (2.0, 0.0), (-1.0, 4.0), (math.nan, 4.0), (2.0, math.inf)],
)
def test_valuation_gap_is_none_unless_both_are_finite_and_positive(small: float | None, large: float | None):
    assert valuation_gap(small, large) is None


def test_gap_change_compares_with_the_reading_nearest_that_many_days_before():
    history = [
        GapPoint(date(2024, 1, 1), 0.40, 1.0, 1.0),
        GapPoint(date(2024, 1, 3), 0.42, 1.0, 1.0),
        GapPoint(date(2024, 1, 8), 0.45, 1.0, 1.0),
        GapPoint(date(2024, 1, 9), 0.50, 1.0, 1.0),
    ]
    # 7 days before 9 Jan is 2 Jan: 1 and 3 Jan are as near, and the older one wins.
    assert gap_change(history, 7) == pytest.approx(0.50 - 0.40)
    assert gap_change(history, 6) == pytest.approx(0.50 - 0.42)
    assert gap_change(history, 1) == pytest.approx(0.50 - 0.45)
    assert gap_change(history, 9) == pytest.approx(0.50 - 0.40)  # 31 Dec ± 2 days reaches 1 Jan
    assert gap_change(history, 12) is None  # 28 Dec ± 3 days: no reading then
    assert gap_change(history[-1:], 0) is None  # the newest reading is not its own past
    assert gap_change([], 7) is None
    with pytest.raises(ValueError, match="days"):
        gap_change(history, -1)


def test_gap_change_never_measures_a_week_against_a_reading_months_old():
    """Two snapshots, 30 Jun 2023 and 18 Jan 2024 (202 days apart): no 1W, 1M, 3M or 1Y change exists."""
    history = [GapPoint(date(2023, 6, 30), 0.37, 1.9, 4.1), GapPoint(date(2024, 1, 18), 0.425, 1.8, 4.3)]
    assert [gap_change(history, days) for days in (7, 30, 91, 365)] == [None, None, None, None]
    assert gap_change(history, 202) == pytest.approx(0.425 - 0.37)


@pytest.mark.parametrize(
    ("days", "lowest", "highest"), [(7, 5, 9), (30, 23, 37), (91, 69, 113), (365, 335, 395)]
)
def test_gap_window_takes_a_reading_only_near_the_date_asked_for(days: int, lowest: int, highest: int):
    newest = GapPoint(date(2024, 6, 1), 0.5, 1.0, 2.0)
    for back in range(1, 400):
        older = GapPoint(newest.as_of - timedelta(days=back), 0.4, 1.2, 2.0)
        found = gap_reading_near([older, newest], days)
        assert (found == older) == (lowest <= back <= highest), back


# --- rebased and drawdown ------------------------------------------------------------------------------


def test_rebased_divides_each_column_by_its_first_valid_value_from_start():
    frame = pd.DataFrame(
        {"^RUT": [50.0, 100.0, 110.0, 90.0], "^GSPC": [1.0, math.nan, 200.0, 300.0]},
        index=pd.DatetimeIndex(["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]),
    )
    result = rebased(frame, date(2024, 1, 4))
    assert list(result.index) == list(frame.index[1:])
    assert result["^RUT"].tolist() == pytest.approx([100.0, 110.0, 90.0])
    assert result["^GSPC"].iloc[1:].tolist() == pytest.approx([100.0, 150.0])
    assert math.isnan(result["^GSPC"].iloc[0])


def test_drawdown_is_zero_at_new_highs_and_negative_below_them():
    s = closes(
        {
            "2024-01-02": 100.0,
            "2024-01-03": 80.0,
            "2024-01-04": math.nan,
            "2024-01-05": 120.0,
            "2024-01-08": 90.0,
        }
    )
    result = drawdown(s)
    assert list(result.index) == list(s.dropna().index)
    assert result.tolist() == pytest.approx([0.0, -0.2, 0.0, -0.25])


# --- properties ----------------------------------------------------------------------------------------


@st.composite
def close_series(draw: st.DrawFn) -> pd.Series:
    """A random walk of closes on a random subset of weekdays (gaps included) over up to ~13 years."""
    start = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2020, 12, 31)))
    days = pd.bdate_range(start, periods=draw(st.integers(min_value=1, max_value=3400)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    keep = rng.random(len(days)) < 0.8
    keep[-1] = True
    walk = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, len(days))))
    return pd.Series(walk[keep], index=days[keep])


OFFSETS = {"1m": pd.DateOffset(months=1), "3m": pd.DateOffset(months=3), "6m": pd.DateOffset(months=6)}
OFFSETS |= {f"{n}y": pd.DateOffset(years=n) for n in (1, 3, 5, 10)}
OFFSETS |= {"1d": pd.DateOffset(days=1), "1w": pd.DateOffset(days=7)}


@given(s=close_series(), period=st.sampled_from([*PERIODS, "3m", "6m"]))
def test_period_return_is_the_latest_close_over_the_close_on_base_date(s: pd.Series, period: str):
    base = base_date(pd.DatetimeIndex(s.index), s.index[-1], period)
    result = period_return(s, period)
    if base is None:
        assert result is None
    else:
        assert result == pytest.approx(s.iloc[-1] / s.loc[base] - 1, rel=1e-12)


@given(
    s=close_series(),
    period=st.sampled_from(sorted(OFFSETS)),
    end=st.dates(date(2000, 1, 1), date(2034, 1, 1)),
)
def test_base_date_is_the_last_date_on_or_before_the_calendar_target(s: pd.Series, period: str, end: date):
    """Checked against pandas' own calendar arithmetic (which clips to month end and Feb 29 → Feb 28)."""
    index = pd.DatetimeIndex(s.index)
    upto = index[index <= pd.Timestamp(end)]
    base = base_date(index, pd.Timestamp(end), period)
    if len(upto) == 0:
        assert base is None
        return
    target = upto[-1] - OFFSETS[period]
    earlier = upto[upto <= target]
    assert base == (earlier[-1] if len(earlier) else None)


@given(
    amount=st.floats(1.0, 1e9),
    years=st.floats(0.1, 60.0),
    low=st.floats(0.0, 0.0499),
    high=st.floats(0.0, 0.0499),
    growth=st.floats(-0.5, 0.3),
)
def test_fee_cost_grows_with_the_expense_ratio(
    amount: float, years: float, low: float, high: float, growth: float
):
    low, high = sorted((low, high))
    cheap, dear = fee_cost(amount, years, low, growth), fee_cost(amount, years, high, growth)
    assert dear.cost >= cheap.cost - 1e-9 * amount
    assert 0.0 <= cheap.cost <= cheap.final_value_without_fee
    if high > low + 1e-6:
        assert dear.final_value < cheap.final_value


@given(small=st.floats(1e-3, 1e3), large=st.floats(1e-3, 1e3))
def test_valuation_gap_is_below_one_and_positive_exactly_when_small_caps_are_cheaper(
    small: float, large: float
):
    gap = valuation_gap(small, large)
    assert gap is not None
    assert gap < 1.0
    assert (gap > 0) == (small < large)


@given(s=close_series())
def test_drawdown_never_exceeds_zero_and_matches_high_mark(s: pd.Series):
    result = drawdown(s)
    assert (result <= 0).all()
    mark = high_mark(s)
    assert mark is not None
    assert -result.iloc[-1] == pytest.approx(mark.below, abs=1e-12)
    assert mark.high_date <= mark.last_date


def test_the_gap_does_not_pair_a_stale_snapshot_with_a_fresh_one() -> None:
    """Synthetic P/B: IWM's value stops after 1 Mar; IVV's later snapshots make no gap after 10 days."""
    from market.valuation import readings

    funds = pd.DataFrame(
        {
            "symbol": ["IWM", "IVV", "IVV", "IVV"],
            "as_of": [date(2024, 3, 1), date(2024, 3, 1), date(2024, 3, 8), date(2024, 3, 20)],
            "price_to_book": [2.0, 4.0, 4.0, 5.0],
        }
    )
    assert [(r.as_of, r.gap) for r in readings(funds, "pb")] == [
        (date(2024, 3, 1), 0.5),
        (date(2024, 3, 8), 0.5),
    ]


# --- moving averages and the ratio against its history --------------------------------------------------


def test_rut_200_day_average_on_2024_01_18_is_the_mean_of_the_200_closes_up_to_it():
    rows = [close for day, close in csv_closes("RUT") if day <= AS_OF][-200:]
    by_hand = math.fsum(rows) / 200
    assert by_hand == pytest.approx(1839.67, abs=0.005)
    assert moving_average(series("RUT"), 200).loc[AS_OF] == pytest.approx(by_hand, rel=1e-12)


def test_a_moving_average_is_unknown_until_enough_sessions_and_skips_missing_closes():
    values = closes({"2024-01-02": 10.0, "2024-01-03": math.nan, "2024-01-04": 20.0, "2024-01-05": 30.0})
    average = moving_average(values, 2)
    assert list(average.index.strftime("%Y-%m-%d")) == ["2024-01-02", "2024-01-04", "2024-01-05"]
    assert math.isnan(average.iloc[0])
    assert average.iloc[1:].tolist() == [15.0, 25.0]
    with pytest.raises(ValueError, match="at least 1 session"):
        moving_average(values, 0)


def test_ratio_z_score_on_2024_01_18_uses_every_day_since_1987_and_none_after():
    rut, spx = dict(csv_closes("RUT")), dict(csv_closes("GSPC"))
    days = sorted(day for day in rut if day in spx and day <= AS_OF)
    ratios = [rut[day] / spx[day] for day in days]
    mean = math.fsum(ratios) / len(ratios)
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in ratios) / (len(ratios) - 1))
    z_by_hand = (ratios[-1] - mean) / std
    assert ratios[-1] == pytest.approx(0.4024, abs=5e-5)
    assert mean == pytest.approx(0.508, abs=5e-4)
    assert z_by_hand == pytest.approx(-1.44, abs=0.005)
    history = ratio_history(series("RUT") / series("GSPC"))
    assert history.mean.loc[AS_OF] == pytest.approx(mean, rel=1e-9)
    assert history.z.loc[AS_OF] == pytest.approx(z_by_hand, rel=1e-9)


def test_ratio_z_score_over_ten_years_counts_only_the_days_in_the_window():
    rut, spx = dict(csv_closes("RUT")), dict(csv_closes("GSPC"))
    start = (date.fromisoformat(AS_OF) - timedelta(days=3652)).isoformat()
    ratios = [rut[d] / spx[d] for d in sorted(rut) if d in spx and start < d <= AS_OF]
    mean = math.fsum(ratios) / len(ratios)
    assert ratio_history(series("RUT") / series("GSPC"), years=10).mean.loc[AS_OF] == pytest.approx(mean)


def test_ratio_z_score_needs_a_settled_history():
    short = closes({f"2024-01-{day:02d}": 0.4 + day / 1000 for day in range(1, 29)})
    assert ratio_history(short).z.isna().all()
