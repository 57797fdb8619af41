"""Observations derived from closes, and rules replayed over real history with the real evaluation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import alerts.replay as replay_module
from alerts.evaluate import Evaluation
from alerts.evaluate import evaluate as real_evaluate
from alerts.observations import (
    WINDOWS,
    Observation,
    base_positions,
    close_time,
    derived_series,
    live_observations,
    observations_at,
)
from alerts.replay import preview, replay
from alerts.rules import parse_rule
from market import metrics
from market.model import Quote
from testing.alerts_oracle import crossing_dates
from testing.world import SHARED_DATA


def read_closes(symbol: str) -> pd.Series:
    frame = pd.read_csv(
        SHARED_DATA / f"{symbol.lstrip('^')}_daily.csv", usecols=["date", "close"], parse_dates=["date"]
    )
    return frame.set_index("date")["close"].astype(float).dropna()


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    """^RUT, ^GSPC and IWM daily closes from the shared CSV history, one column per symbol."""
    frame = pd.DataFrame({symbol: read_closes(symbol) for symbol in ("^RUT", "^GSPC", "IWM")}).sort_index()
    frame.index.name = None
    return frame


def crossings_at_the_close(
    series: pd.Series, start: date, end: date, level: float, band: float, direction: str
) -> list[date]:
    """The closes at which a hysteresis crossing happens, straight from the CSV series
    (``testing.alerts_oracle.crossing_dates``)."""
    window = series[series.index <= pd.Timestamp(end)]
    values = [(when.date(), float(close)) for when, close in window.items()]
    return crossing_dates(values, start, level, band, direction)


# --- derived series and observations -------------------------------------------------------------------


def tiny() -> pd.DataFrame:
    index = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"])
    return pd.DataFrame(
        {"^RUT": [100.0, 102.0, np.nan, 96.9, 110.0], "^GSPC": [200.0, 200.0, 210.0, 190.0, 220.0]},
        index=index,
    )


def test_move_is_the_percent_change_from_the_previous_known_close() -> None:
    move = derived_series(tiny(), ["^RUT:move"])["^RUT:move"].to_numpy()
    assert np.isnan(move[0])
    assert move[1] == pytest.approx(2.0)
    assert np.isnan(move[2])  # no close that day: no move
    assert move[3] == pytest.approx((96.9 / 102 - 1) * 100)
    assert move[4] == pytest.approx((110 / 96.9 - 1) * 100)


def test_drawdown_is_the_percent_below_the_all_time_closing_high() -> None:
    drawdown = derived_series(tiny(), ["^RUT:drawdown"])["^RUT:drawdown"].to_numpy()
    assert drawdown[[0, 1, 4]] == pytest.approx([0.0, 0.0, 0.0])
    assert drawdown[3] == pytest.approx(5.0)


def test_ratio_is_rut_over_gspc_on_the_same_date() -> None:
    ratio = derived_series(tiny(), ["RATIO"])["RATIO"].to_numpy()
    assert ratio[0] == pytest.approx(0.5)
    assert np.isnan(ratio[2])


def test_drawdown_agrees_with_market_metrics_on_real_history(closes: pd.DataFrame) -> None:
    ours = derived_series(closes, ["^RUT:drawdown"])["^RUT:drawdown"].dropna()
    theirs = -metrics.drawdown(closes["^RUT"]) * 100
    pd.testing.assert_series_equal(ours, theirs, check_names=False, check_freq=False, atol=1e-9, rtol=0)


def test_window_bases_agree_with_market_metrics_base_date(closes: pd.DataFrame) -> None:
    dates = pd.DatetimeIndex(closes["^RUT"].dropna().index)
    sample = range(0, len(dates), 211)
    for window in WINDOWS:
        positions = base_positions(dates, window)
        for i in sample:
            expected = metrics.base_date(dates, dates[i], window)
            got = None if positions[i] < 0 else dates[positions[i]]
            assert got == expected, (window, dates[i])


def test_month_windows_clip_to_the_month_end_and_years_clip_feb_29() -> None:
    dates = pd.date_range("2023-01-01", "2024-12-31", freq="D")
    positions = base_positions(dates, "1m")
    at = {d.date(): dates[p].date() for d, p in zip(dates, positions, strict=True) if p >= 0}
    assert at[date(2024, 3, 31)] == date(2024, 2, 29)
    assert at[date(2023, 3, 31)] == date(2023, 2, 28)
    year = base_positions(dates, "1y")
    assert dates[year[dates.get_loc(pd.Timestamp("2024-02-29"))]].date() == date(2023, 2, 28)
    ytd = base_positions(dates, "ytd")
    assert dates[ytd[dates.get_loc(pd.Timestamp("2024-06-30"))]].date() == date(2023, 12, 31)


def test_lead_agrees_with_market_metrics_relative_performance(closes: pd.DataFrame) -> None:
    keys = [f"LEAD:{w}" for w in WINDOWS]
    series = derived_series(closes, keys)
    valid = series.index[closes["^RUT"].notna() & closes["^GSPC"].notna()]
    for when in valid[::397]:
        for window in WINDOWS:
            expected = metrics.relative_performance(closes["^RUT"], closes["^GSPC"], window, when.date())
            got = series.at[when, f"LEAD:{window}"]
            if expected is None:
                assert math.isnan(got), (when, window)
            else:
                assert got == pytest.approx(expected, abs=1e-9), (when, window)


def test_gap_is_in_percent_and_an_old_snapshot_is_not_carried_past_ten_days() -> None:
    """Synthetic gap snapshots (the CSV history has no price-to-book): 0.40 on Jan 2, 0.42 on Jan 5."""
    index = pd.date_range("2024-01-02", "2024-01-31", freq="B")
    frame = pd.DataFrame({"^RUT": 1.0}, index=index)
    gap = pd.Series([0.40, 0.42], index=pd.DatetimeIndex(["2024-01-02", "2024-01-05"]))
    column = derived_series(frame, ["GAP"], gap)["GAP"]
    assert column[pd.Timestamp("2024-01-04")] == pytest.approx(40.0)
    assert column[pd.Timestamp("2024-01-15")] == pytest.approx(42.0)
    assert np.isnan(column[pd.Timestamp("2024-01-16")])


def test_a_gap_history_in_percent_is_refused() -> None:
    frame = pd.DataFrame({"^RUT": [1.0]}, index=pd.DatetimeIndex(["2024-01-02"]))
    with pytest.raises(ValueError, match="fraction"):
        derived_series(frame, ["GAP"], pd.Series([42.0], index=frame.index))


def test_derived_series_refuses_unknown_keys_and_missing_columns() -> None:
    with pytest.raises(ValueError, match="unknown observation key"):
        derived_series(tiny(), ["^XYZ"])
    with pytest.raises(ValueError, match="no IWM column"):
        derived_series(tiny(), ["IWM"])


def test_observations_at_a_date_are_closes_of_that_session_without_unknown_values() -> None:
    series = derived_series(tiny(), ["^RUT", "^GSPC", "^RUT:move"])
    seen = observations_at(series, date(2024, 1, 4))
    assert set(seen) == {"^GSPC"}  # ^RUT had no close that day
    observation = seen["^GSPC"]
    assert (observation.value, observation.session, observation.is_close) == (210.0, date(2024, 1, 4), True)
    assert observation.time == close_time(date(2024, 1, 4))
    assert observation.time.tzinfo is not None


def test_a_holiday_has_no_observations() -> None:
    series = derived_series(tiny(), ["^RUT"])
    assert observations_at(series, date(2024, 1, 1)) == {}


def test_observations_at_accepts_one_row_of_the_frame() -> None:
    series = derived_series(tiny(), ["^RUT"])
    assert observations_at(series.iloc[1])["^RUT"].value == 102.0


def test_live_observations_compute_the_same_keys_as_the_closes(closes: pd.DataFrame) -> None:
    """A live price equal to the day's close gives the values the close gives."""
    day = pd.Timestamp("2024-07-16")
    keys = ["^RUT", "^RUT:move", "^RUT:drawdown", "RATIO", *[f"LEAD:{w}" for w in WINDOWS]]
    expected = derived_series(closes.loc[:day], keys).loc[day]
    moment = datetime(2024, 7, 16, 18, 0, tzinfo=UTC)
    quotes = {
        "^RUT": Quote("^RUT", float(closes.at[day, "^RUT"]), moment),
        "^GSPC": (float(closes.at[day, "^GSPC"]), moment),
    }
    seen = live_observations(closes.loc[: day - timedelta(days=1)], quotes, day.date(), now=moment)
    for key in keys:
        assert seen[key].value == pytest.approx(expected[key], abs=1e-9), key
        assert not seen[key].is_close
        assert not seen[key].stale


def test_live_observations_mark_old_quotes_stale(closes: pd.DataFrame) -> None:
    session = date(2024, 7, 16)
    history = closes.loc[:"2024-07-15"]
    yesterday = datetime(2024, 7, 15, 19, 0, tzinfo=UTC)
    seen = live_observations(history, {"^RUT": (2200.0, yesterday)}, session)
    assert seen["^RUT"].stale
    assert seen["^RUT:move"].stale
    moment = datetime(2024, 7, 16, 15, 0, tzinfo=UTC)
    late = live_observations(history, {"^RUT": (2200.0, moment)}, session, now=moment + timedelta(hours=1))
    assert late["^RUT"].stale
    fresh = live_observations(history, {"^RUT": (2200.0, moment)}, session, now=moment + timedelta(minutes=5))
    assert not fresh["^RUT"].stale


def test_a_live_move_across_a_missing_session_is_stale(closes: pd.DataFrame) -> None:
    moment = datetime(2024, 7, 16, 15, 0, tzinfo=UTC)
    history = closes.loc[:"2024-07-12"]  # Monday's close is missing
    seen = live_observations(
        history, {"^RUT": (2200.0, moment)}, date(2024, 7, 16), previous_session=date(2024, 7, 15)
    )
    assert seen["^RUT:move"].stale
    assert not seen["^RUT"].stale


def test_live_observations_can_be_limited_to_the_keys_asked_for(closes: pd.DataFrame) -> None:
    moment = datetime(2024, 7, 16, 15, 0, tzinfo=UTC)
    seen = live_observations(
        closes.loc[:"2024-07-15"],
        {"^RUT": (2200.0, moment), "^GSPC": (5600.0, moment)},
        date(2024, 7, 16),
        keys=["RATIO"],
    )
    assert list(seen) == ["RATIO"]


# --- replay on real history ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def year_2024(closes: pd.DataFrame) -> dict[str, list[date]]:
    out = {}
    for text in ("rut above 2000 close", "rut below 2000 close", "rut cross 2000 close"):
        out[text] = [
            a.session for a in replay([parse_rule(text)], closes, date(2024, 1, 1), date(2024, 12, 31))
        ]
    return out


def test_rut_crossing_above_2000_at_the_close_in_2024_matches_the_csv(
    closes: pd.DataFrame, year_2024: dict[str, list[date]]
) -> None:
    expected = crossings_at_the_close(
        closes["^RUT"], date(2024, 1, 1), date(2024, 12, 31), 2000, 0.01, "above"
    )
    assert year_2024["rut above 2000 close"] == expected
    assert expected == [
        date(2024, 1, 29),
        date(2024, 2, 9),
        date(2024, 2, 14),
        date(2024, 4, 23),
        date(2024, 5, 2),
    ]


def test_rut_crossing_below_2000_at_the_close_in_2024_matches_the_csv(
    closes: pd.DataFrame, year_2024: dict[str, list[date]]
) -> None:
    expected = crossings_at_the_close(
        closes["^RUT"], date(2024, 1, 1), date(2024, 12, 31), 2000, 0.01, "below"
    )
    assert year_2024["rut below 2000 close"] == expected
    assert expected == [date(2024, 1, 3), date(2024, 2, 13), date(2024, 2, 21), date(2024, 4, 15)]


def test_a_cross_fires_on_the_union_of_its_above_and_below_crossings(
    year_2024: dict[str, list[date]],
) -> None:
    both = sorted(year_2024["rut above 2000 close"] + year_2024["rut below 2000 close"])
    assert year_2024["rut cross 2000 close"] == both


def test_replay_steps_the_real_evaluation_once_per_trading_date(
    closes: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[datetime] = []

    def counting(rules: pd.DataFrame, observations: Mapping[str, Observation], now: datetime) -> Evaluation:
        calls.append(now)
        return real_evaluate(rules, observations, now)

    monkeypatch.setattr(replay_module, "evaluate", counting)
    replay([parse_rule("rut above 2000 close")], closes, date(2024, 3, 1), date(2024, 3, 31))
    trading_days = closes.loc["2024-03-01":"2024-03-31"].index
    assert [c.date() for c in calls] == [d.date() for d in trading_days]


def test_rules_are_created_on_the_last_close_before_the_start(closes: pd.DataFrame) -> None:
    """Jan 26 closed below 2,000 and Jan 29 above: from Jan 29 the rule is armed and fires that day; from
    Jan 30 it is created already above and waits for the next crossing."""
    spec = parse_rule("rut above 2000 close")
    assert [a.session for a in replay([spec], closes, date(2024, 1, 29), date(2024, 2, 1))] == [
        date(2024, 1, 29)
    ]
    assert replay([spec], closes, date(2024, 1, 30), date(2024, 2, 8)) == []


def test_replay_alert_lines_start_with_the_iso_date_and_carry_the_rule_and_value(
    closes: pd.DataFrame,
) -> None:
    (first, *_) = replay([parse_rule("rut above 2000 close")], closes, date(2024, 1, 1), date(2024, 12, 31))
    assert first.line().startswith("2024-01-29  RUT above 2,000 · close · band 1%")
    assert first.value == pytest.approx(float(closes.at[pd.Timestamp("2024-01-29"), "^RUT"]))
    assert first.level == 2000.0
    assert first.kind == "above"


def test_a_once_rule_fires_only_the_first_time(closes: pd.DataFrame) -> None:
    alerts = replay([parse_rule("rut above 2000 close once")], closes, date(2024, 1, 1), date(2024, 12, 31))
    assert [a.session for a in alerts] == [date(2024, 1, 29)]


def test_an_expired_rule_stops_firing(closes: pd.DataFrame) -> None:
    """Created at the Dec 29, 2023 close for 30 days: the Jan 29 crossing comes after it expired."""
    alerts = replay(
        [parse_rule("rut below 2000 close for 30d")], closes, date(2024, 1, 1), date(2024, 12, 31)
    )
    assert [a.session for a in alerts] == [date(2024, 1, 3)]
    later = replay([parse_rule("rut above 2000 close for 30d")], closes, date(2024, 1, 1), date(2024, 12, 31))
    assert later == []


def test_several_rules_replay_together_in_date_order(
    closes: pd.DataFrame, year_2024: dict[str, list[date]]
) -> None:
    specs = [parse_rule("rut above 2000 close"), parse_rule("rut below 2000 close")]
    alerts = replay(specs, closes, date(2024, 1, 1), date(2024, 12, 31))
    assert [a.session for a in alerts] == sorted(
        year_2024["rut above 2000 close"] + year_2024["rut below 2000 close"]
    )
    assert {a.rule for a in alerts} == {s.canonical for s in specs}


def test_a_high_rule_fires_on_new_all_time_closing_highs_with_a_pull_back_between(
    closes: pd.DataFrame,
) -> None:
    rut = closes["^RUT"].dropna()
    start, end = date(2024, 11, 1), date(2026, 3, 6)
    reference = float(rut[rut.index < pd.Timestamp(start)].max())
    armed, expected = True, []
    for when, close in rut[rut.index >= pd.Timestamp(start)].items():
        if armed and close > reference:
            expected.append(when.date())
            armed = False
        reference = max(reference, close)
        if not armed and close <= reference * 0.99:
            armed = True
    alerts = replay([parse_rule("rut high")], closes, start, end)
    assert [a.session for a in alerts] == expected
    assert expected  # the history holds new highs after 2024 (2,718.77 on 2026-01-22)


def test_a_move_rule_fires_on_each_session_whose_close_moved_enough(closes: pd.DataFrame) -> None:
    rut = closes["^RUT"].dropna()
    change = (rut / rut.shift(1) - 1) * 100
    in_2024 = change[(change.index >= "2024-01-01") & (change.index <= "2024-12-31")]
    expected = [d.date() for d, c in in_2024.items() if abs(c) >= 2]
    alerts = replay([parse_rule("rut move 2%")], closes, date(2024, 1, 1), date(2024, 12, 31))
    assert [a.session for a in alerts] == expected


def test_an_etf_rule_replays_on_the_etf_closes(closes: pd.DataFrame) -> None:
    iwm = closes["IWM"].dropna()
    expected = crossings_at_the_close(iwm, date(2024, 1, 1), date(2024, 9, 12), 200, 0.01, "above")
    alerts = replay([parse_rule("iwm above 200 close")], closes, date(2024, 1, 1), date(2024, 9, 12))
    assert [a.session for a in alerts] == expected


def test_a_gap_shift_replays_on_a_gap_history() -> None:
    """A synthetic gap history (fractions), measured from the value at creation and then at each alert."""
    index = pd.date_range("2024-01-02", periods=8, freq="B")
    frame = pd.DataFrame({"^RUT": 2000.0, "^GSPC": 4800.0}, index=index)
    gap = pd.Series([0.40, 0.41, 0.425, 0.43, 0.44, 0.455, 0.40, 0.39], index=index)
    alerts = replay([parse_rule("gap shift 3")], frame, index[1].date(), index[-1].date(), gap=gap)
    assert [(a.session, round(a.value, 6)) for a in alerts] == [
        (index[3].date(), 43.0),
        (index[6].date(), 40.0),
    ]


def test_replay_needs_a_close_before_the_start(closes: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no close before 1987-09-10"):
        replay(
            [parse_rule("rut above 200")], closes[["^RUT"]].dropna(), date(1987, 9, 10), date(1987, 12, 31)
        )


def test_preview_counts_and_dates_the_alerts_of_the_last_year(
    closes: pd.DataFrame, year_2024: dict[str, list[date]]
) -> None:
    result = preview(parse_rule("rut above 2000 close"), closes, date(2024, 12, 31))
    assert result.start == date(2024, 1, 2)
    assert result.count == 5
    assert list(result.dates) == year_2024["rut above 2000 close"]
