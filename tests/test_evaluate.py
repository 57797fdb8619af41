"""The evaluation semantics of issue 3, on hand-built observations and as properties against the oracle."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.evaluate import (
    ABOVE,
    BELOW,
    FIRED_COLUMNS,
    RULE_COLUMNS,
    STATE_COLUMNS,
    Evaluation,
    advance,
    apply_state,
    evaluate,
    initial_state,
    rearm_level,
    rule_rows,
    rules_frame,
    session_number,
)
from alerts.observations import Observation
from alerts.rules import LEAD, RuleSpec, parse_rule
from testing import alerts_oracle as oracle

NAN = math.nan
DAY0 = date(2024, 6, 3)
NOW = datetime(2024, 6, 3, 20, 0, tzinfo=UTC)


def make_rule(**fields: Any) -> dict[str, Any]:
    """A rule dict in the oracle's terms: an armed, live, repeating ``^RUT above 3000`` unless told."""
    rule = {
        "rule_id": 1,
        "chat_id": 10,
        "group_id": 1,
        "key": "^RUT",
        "kind": "above",
        "level": 3000.0,
        "band": 0.01,
        "mode": "live",
        "once": False,
        "expires_at": None,
        "paused": False,
        "status": "active",
        "armed": True,
        "reference": NAN,
        "last_value": NAN,
        "last_fired_session": None,
        "last_session": None,
    }
    rule.update(fields)
    if "group_id" not in fields:
        rule["group_id"] = rule["rule_id"]
    return rule


def seen(
    value: float,
    *,
    key: str = "^RUT",
    session: date = DAY0,
    close: bool = True,
    stale: bool = False,
    at: datetime | None = None,
) -> dict[str, Observation]:
    moment = at or datetime.combine(session, datetime.min.time(), UTC) + timedelta(hours=20)
    return {key: Observation(key, value, moment, session, close, stale)}


def judge(
    rules: list[dict[str, Any]], observations: dict[str, Observation], now: datetime = NOW
) -> tuple[Evaluation, list[dict[str, Any]]]:
    """Evaluate vectorised, check the oracle agrees, and return the evaluation and the rules after it."""
    evaluation = evaluate(oracle.to_frame(rules), observations, now)
    changes = oracle.state_from_frame(evaluation.state)
    fired = oracle.fired_from_frame(evaluation.fired)
    expected_changes, expected_fired = oracle.oracle_evaluate(rules, observations, now)
    assert oracle.same_changes(changes, expected_changes), (changes, expected_changes)
    assert oracle.same_records(fired, expected_fired), (fired, expected_fired)
    return evaluation, oracle.apply_changes(rules, changes)


def run_closes(rule: dict[str, Any], values: list[float], *, key: str = "^RUT") -> tuple[list[bool], dict]:
    """Feed one close a day from DAY0; which days fired, and the rule at the end."""
    rules = [rule]
    fires = []
    for offset, value in enumerate(values):
        day = DAY0 + timedelta(days=offset)
        evaluation, rules = judge(rules, seen(value, key=key, session=day), NOW + timedelta(days=offset))
        fires.append(len(evaluation.fired) == 1)
    return fires, rules[0]


# --- level rules ---------------------------------------------------------------------------------------


def test_above_fires_at_exactly_the_level_and_disarms() -> None:
    fires, rule = run_closes(make_rule(), [2990.0, 3000.0])
    assert fires == [False, True]
    assert rule["armed"] is False


def test_above_does_not_fire_again_while_the_value_hovers_above_the_rearm_level() -> None:
    fires, _ = run_closes(make_rule(), [3000.0, 2980.0, 3010.0, 2970.01, 3050.0])
    assert fires == [True, False, False, False, False]


def test_above_rearms_at_exactly_level_times_one_minus_band_and_fires_on_the_next_crossing() -> None:
    edge = 3000.0 * (1 - 0.01)
    fires, rule = run_closes(make_rule(), [3000.0, edge])
    assert fires == [True, False]
    assert rule["armed"] is True
    fires, _ = run_closes(rule, [3000.0])
    assert fires == [True]


def test_above_just_inside_the_band_stays_disarmed() -> None:
    _, rule = run_closes(make_rule(armed=False), [3000.0 * 0.99 + 1e-9])
    assert rule["armed"] is False


def test_rearming_sends_no_message() -> None:
    evaluation, rules = judge([make_rule(armed=False)], seen(2900.0))
    assert evaluation.fired.empty
    assert rules[0]["armed"] is True


def test_below_mirrors_above_fires_at_level_and_rearms_at_level_times_one_plus_band() -> None:
    rule = make_rule(kind="below", level=4500.0, band=0.02)
    fires, rule = run_closes(rule, [4600.0, 4500.0, 4580.0, 4500.0, 4500.0 * 1.02, 4499.0])
    assert fires == [False, True, False, False, False, True]


def test_negative_level_band_applies_to_its_size_and_rearms_away_from_the_level() -> None:
    """lead -5 with band 10%: a below rule re-arms at -4.5, an above rule at -5.5."""
    assert rearm_level(BELOW, -5.0, 0.1) == pytest.approx(-4.5)
    assert rearm_level(ABOVE, -5.0, 0.1) == pytest.approx(-5.5)
    below = make_rule(key="LEAD:3m", kind="below", level=-5.0, band=0.1)
    fires, _ = run_closes(below, [-5.0, -4.6, -5.2, -4.5, -6.0], key="LEAD:3m")
    assert fires == [True, False, False, False, True]
    above = make_rule(key="LEAD:3m", kind="above", level=-5.0, band=0.1, armed=False)
    fires, _ = run_closes(above, [-5.4, -5.0, -5.5, -4.0], key="LEAD:3m")
    assert fires == [False, False, False, True]


def test_fired_row_says_rule_value_previous_value_time_session_and_source() -> None:
    rule = make_rule(chat_id=77, last_value=2990.0)
    moment = datetime(2024, 6, 3, 15, 5, tzinfo=UTC)
    evaluation, _ = judge([rule], seen(3001.5, close=False, at=moment))
    assert list(evaluation.fired.columns) == list(FIRED_COLUMNS)
    row = evaluation.fired.iloc[0]
    assert (row["rule_id"], row["chat_id"], row["key"], row["kind"]) == (1, 77, "^RUT", "above")
    assert (row["level"], row["value"], row["previous_value"]) == (3000.0, 3001.5, 2990.0)
    assert row["time"] == pd.Timestamp(moment)
    assert row["session"] == pd.Timestamp(DAY0)
    assert row["source"] == "live"


def test_state_holds_only_the_rows_that_changed() -> None:
    rules = [
        make_rule(rule_id=1),  # fires
        make_rule(rule_id=2, key="^GSPC"),  # no observation
        make_rule(rule_id=3, level=5000.0, last_value=3100.0),  # same value again: nothing changes
    ]
    evaluation, _ = judge(rules, seen(3100.0, close=False))
    assert list(evaluation.state.index) == [1]
    assert list(evaluation.state.columns) == list(STATE_COLUMNS)
    assert evaluation.state.index.name == "rule_id"


# --- creation ------------------------------------------------------------------------------------------


def test_initial_state_arms_an_above_rule_only_when_the_value_is_below_the_level() -> None:
    spec = parse_rule("rut above 3000")
    below = initial_state(spec, 2999.0)
    at = initial_state(spec, 3000.0)
    assert (below.rows[0].armed, below.already_holds) == (True, False)
    assert (at.rows[0].armed, at.already_holds) == (False, True)


def test_rule_created_while_its_condition_holds_waits_for_the_next_crossing() -> None:
    """RUT is already above 3,000: the next crossing tells, the current level does not."""
    rows, start = rule_rows(parse_rule("rut above 3000"), 3050.0, first_rule_id=1, chat_id=1, created_at=NOW)
    assert start.already_holds
    frame = rules_frame(rows)
    fired = []
    for offset, value in enumerate([3060.0, 2960.0, 3001.0]):
        evaluation = evaluate(frame, seen(value, session=DAY0 + timedelta(days=offset)), NOW)
        frame = apply_state(frame, evaluation.state)
        fired.append(len(evaluation.fired))
    assert fired == [0, 0, 1]


def test_initial_state_with_an_unknown_value_is_not_armed() -> None:
    start = initial_state(parse_rule("rut above 3000"), NAN)
    assert start.rows[0].armed is False
    assert not start.already_holds


def test_cross_is_an_above_row_and_a_below_row_sharing_a_group() -> None:
    rows, _ = rule_rows(parse_rule("rut cross 2000"), 1990.0, first_rule_id=7, chat_id=1, created_at=NOW)
    assert [(r["rule_id"], r["group_id"], r["kind"], r["armed"]) for r in rows] == [
        (7, 7, "above", True),
        (8, 7, "below", False),
    ]
    frame = rules_frame(rows)
    kinds = []
    # Each row keeps its own band: the below row, created while RUT was already below 2,000, arms only
    # once RUT has been 1% above it (2,020).
    for offset, value in enumerate([2001.0, 1979.0, 2025.0, 1990.0]):
        evaluation = evaluate(frame, seen(value, session=DAY0 + timedelta(days=offset)), NOW)
        frame = apply_state(frame, evaluation.state)
        kinds.append(list(evaluation.fired["kind"]))
    assert kinds == [["above"], [], ["above"], ["below"]]


def test_initial_state_of_a_close_observation_counts_that_close_as_judged() -> None:
    close = Observation("^RUT", 2900.0, NOW, DAY0, True)
    start = initial_state(parse_rule("rut above 3000 close"), close)
    assert start.rows[0].last_session == session_number(DAY0)


def test_high_rule_starts_from_the_all_time_high() -> None:
    start = initial_state(parse_rule("rut high"), 2000.0, all_time_high=2442.74)
    assert start.rows[0].reference == 2442.74
    assert start.rows[0].armed
    assert not start.already_holds


def test_move_created_after_a_big_move_today_waits_for_the_next_session() -> None:
    live = Observation("^RUT:move", -2.5, NOW, DAY0, False)
    start = initial_state(parse_rule("rut move 2% live"), live)
    assert start.already_holds
    assert start.rows[0].last_fired_session == session_number(DAY0)


# --- move, high, shift ---------------------------------------------------------------------------------


def test_move_fires_when_the_change_reaches_the_level_up_or_down() -> None:
    rule = make_rule(key="^RUT:move", kind="move", level=2.0, mode="close")
    fires, _ = run_closes(rule, [1.99, -2.0, 2.5, 0.1], key="^RUT:move")
    assert fires == [False, True, True, False]


def test_move_fires_at_most_once_per_session_and_a_new_session_rearms() -> None:
    rules = [make_rule(key="^RUT:move", kind="move", level=2.0)]
    first, rules = judge(rules, seen(2.1, key="^RUT:move", close=False))
    again, rules = judge(rules, seen(3.0, key="^RUT:move", close=False))
    at_close, rules = judge(rules, seen(3.2, key="^RUT:move", close=True))
    assert (len(first.fired), len(again.fired), len(at_close.fired)) == (1, 0, 0)
    assert rules[0]["armed"] is False
    next_day, rules = judge(rules, seen(0.5, key="^RUT:move", close=False, session=DAY0 + timedelta(days=1)))
    assert next_day.fired.empty
    assert rules[0]["armed"] is True


def test_high_fires_on_a_close_above_the_reference_and_the_reference_follows() -> None:
    rule = make_rule(kind="high", level=NAN, reference=2442.74, mode="close")
    fires, rule = run_closes(rule, [2442.74, 2450.0, 2460.0, 2440.0, 2460.0 * 0.99, 2461.0])
    # equal is not a new high; 2460 is a new high but within the band of the last alert; a 1% pull-back
    # re-arms it.
    assert fires == [False, True, False, False, False, True]
    assert rule["reference"] == 2461.0


def test_drawdown_rule_is_an_above_rule_on_the_drawdown_key() -> None:
    rows, _ = rule_rows(parse_rule("rut drawdown 10%"), 4.0, first_rule_id=1, chat_id=1, created_at=NOW)
    assert (rows[0]["key"], rows[0]["kind"], rows[0]["level"]) == ("^RUT:drawdown", "above", 10.0)
    evaluation = evaluate(rules_frame(rows), seen(10.0, key="^RUT:drawdown"), NOW)
    assert len(evaluation.fired) == 1


def test_gap_shift_fires_at_n_points_from_the_reference_which_then_moves() -> None:
    rule = make_rule(key="GAP", kind="shift", level=3.0, reference=40.0, mode="close")
    fires, rule = run_closes(rule, [42.9, 43.0, 44.0, 40.0, 39.0], key="GAP")
    assert fires == [False, True, False, True, False]
    assert rule["reference"] == 40.0


def test_gap_shift_without_a_reference_adopts_the_first_value_silently() -> None:
    rule = make_rule(key="GAP", kind="shift", level=3.0, reference=NAN, mode="close")
    fires, rule = run_closes(rule, [41.0, 44.0], key="GAP")
    assert fires == [False, True]


# --- what is judged ------------------------------------------------------------------------------------


def test_close_rules_ignore_live_observations() -> None:
    evaluation, rules = judge([make_rule(mode="close")], seen(3100.0, close=False))
    assert evaluation.fired.empty
    assert evaluation.state.empty
    assert rules[0]["armed"] is True


def test_close_rules_never_judge_the_same_close_twice() -> None:
    rules = [make_rule(mode="close", last_value=2900.0)]
    first, rules = judge(rules, seen(2960.0))
    assert rules[0]["last_session"] == DAY0
    again, rules = judge(rules, seen(3100.0))  # the same session's close, served again
    assert first.fired.empty
    assert again.fired.empty
    assert again.state.empty


def test_live_rules_also_judge_closes() -> None:
    evaluation, rules = judge([make_rule(mode="live")], seen(3000.0, close=True))
    assert len(evaluation.fired) == 1
    assert rules[0]["last_session"] == DAY0


@pytest.mark.parametrize(
    "observations",
    [
        pytest.param(seen(NAN), id="nan"),
        pytest.param(seen(math.inf), id="inf"),
        pytest.param(seen(3100.0, stale=True), id="stale"),
        pytest.param({}, id="holiday: no observation"),
        pytest.param(seen(3100.0, key="^GSPC"), id="another key"),
    ],
)
def test_missing_nan_or_stale_values_never_fire_and_change_nothing(observations: dict) -> None:
    for rule in (
        make_rule(last_value=2950.0),
        make_rule(kind="move", key="^RUT:move", level=0.5),
        make_rule(kind="high", reference=2000.0),
        make_rule(kind="shift", level=1.0, reference=NAN),
    ):
        evaluation, _ = judge([rule], observations)
        assert evaluation.fired.empty
        assert evaluation.state.empty


def test_paused_rules_are_skipped() -> None:
    evaluation, _ = judge([make_rule(paused=True)], seen(3100.0))
    assert evaluation.fired.empty
    assert evaluation.state.empty


def test_expired_rules_become_expired_and_never_fire() -> None:
    evaluation, rules = judge([make_rule(expires_at=NOW)], seen(3100.0), now=NOW)
    assert evaluation.fired.empty
    assert rules[0]["status"] == "expired"
    later, _ = judge(rules, seen(3200.0), now=NOW + timedelta(days=1))
    assert later.fired.empty
    assert later.state.empty


def test_a_rule_expiring_just_after_now_still_fires() -> None:
    evaluation, rules = judge([make_rule(expires_at=NOW + timedelta(seconds=1))], seen(3100.0), now=NOW)
    assert len(evaluation.fired) == 1
    assert rules[0]["status"] == "active"


def test_paused_rules_still_expire() -> None:
    evaluation, rules = judge([make_rule(paused=True, expires_at=NOW)], seen(3100.0), now=NOW)
    assert evaluation.fired.empty
    assert rules[0]["status"] == "expired"


def test_once_rules_are_done_after_firing_and_never_fire_again() -> None:
    fires, rule = run_closes(make_rule(once=True), [3000.0, 2900.0, 3100.0])
    assert fires == [True, False, False]
    assert rule["status"] == "done"
    assert bool(evaluate(oracle.to_frame([rule]), seen(3100.0), NOW).fired.empty)


def test_each_row_fires_at_most_once_per_evaluation() -> None:
    rules = [make_rule(rule_id=i, level=float(3000 + i)) for i in range(1, 6)]
    evaluation, _ = judge(rules, seen(3100.0))
    assert sorted(evaluation.fired["rule_id"]) == [1, 2, 3, 4, 5]


def test_a_plain_string_key_column_judges_like_a_categorical_one() -> None:
    rules = [make_rule(rule_id=1), make_rule(rule_id=2, key="^GSPC", level=5000.0)]
    frame = oracle.to_frame(rules)
    plain = frame.assign(key=frame["key"].astype(str))
    observations = seen(3100.0) | seen(5100.0, key="^GSPC")
    a, b = evaluate(frame, observations, NOW), evaluate(plain, observations, NOW)
    pd.testing.assert_frame_equal(a.state, b.state)
    pd.testing.assert_frame_equal(a.fired, b.fired, check_categorical=False)


def test_rules_frame_has_the_documented_dtypes() -> None:
    frame = oracle.to_frame([make_rule()])
    for column, dtype in RULE_COLUMNS.items():
        assert str(frame[column].dtype) == str(dtype), column
    assert frame.index.dtype == np.int64


def test_an_empty_rules_frame_evaluates_to_nothing() -> None:
    evaluation = evaluate(rules_frame([]), seen(3100.0), NOW)
    assert evaluation.state.empty
    assert evaluation.fired.empty
    assert list(evaluation.fired.columns) == list(FIRED_COLUMNS)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(oracle.to_frame([make_rule()]), seen(3100.0), datetime(2024, 6, 3, 20))


def test_apply_state_writes_only_the_changed_rows() -> None:
    frame = oracle.to_frame([make_rule(rule_id=1), make_rule(rule_id=2, key="^GSPC")])
    evaluation = evaluate(frame, seen(3100.0), NOW)
    updated = apply_state(frame, evaluation.state)
    assert list(updated["armed"]) == [False, True]
    assert list(frame["armed"]) == [True, True]  # the input is not modified


# --- properties ----------------------------------------------------------------------------------------

KEYS = ("X", "Y", "Z")  # Z is never observed
GRID = st.one_of(
    st.integers(-12, 12).map(float),
    st.integers(90, 110).map(float),
    st.sampled_from([9.0, 95.0, 105.0, -5.5, -4.5]),
    st.floats(-120, 120, allow_nan=False),
)


@st.composite
def random_rule(draw: st.DrawFn, rule_id: int, *, expiring: bool = True) -> dict[str, Any]:
    kind = draw(st.sampled_from(["above", "below", "move", "high", "shift"]))
    if kind in ("above", "below"):
        level = draw(st.sampled_from([-10.0, -5.0, 0.0, 5.0, 10.0, 100.0]))
    elif kind == "high":
        level = NAN
    else:
        level = draw(st.sampled_from([1.0, 2.0, 5.0]))
    expires_at = None
    if expiring and draw(st.booleans()):
        expires_at = NOW + timedelta(hours=draw(st.integers(0, 12)))
    return make_rule(
        rule_id=rule_id,
        chat_id=draw(st.integers(1, 3)),
        key=draw(st.sampled_from(KEYS)),
        kind=kind,
        level=level,
        band=draw(st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.2])),
        mode=draw(st.sampled_from(["live", "close"])),
        once=draw(st.booleans()),
        expires_at=expires_at,
        paused=draw(st.integers(0, 9)) == 0,
        status=draw(st.sampled_from(["active"] * 8 + ["done", "expired"])),
        armed=draw(st.booleans()),
        reference=draw(st.one_of(st.just(NAN), GRID)),
        last_value=draw(st.one_of(st.just(NAN), GRID)),
        last_fired_session=draw(st.sampled_from([None, DAY0 - timedelta(days=1), DAY0])),
        last_session=draw(st.sampled_from([None, DAY0 - timedelta(days=1), DAY0])),
    )


@st.composite
def random_rules(draw: st.DrawFn, *, expiring: bool = True) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 8))
    return [draw(random_rule(rule_id, expiring=expiring)) for rule_id in range(1, count + 1)]


@st.composite
def random_steps(draw: st.DrawFn) -> list[tuple[datetime, dict[str, Observation]]]:
    """A run of refreshes: sessions that stay or move on, closes and live values, gaps, NaN, stale."""
    steps = []
    day, moment = DAY0, NOW
    for _ in range(draw(st.integers(1, 10))):
        day += timedelta(days=draw(st.sampled_from([0, 0, 1, 1, 3])))
        moment += timedelta(hours=draw(st.integers(1, 6)))
        observations = {}
        for key in ("X", "Y"):
            if draw(st.integers(0, 5)) == 0:
                continue  # no value for this key in this refresh
            value = draw(st.one_of(GRID, st.just(NAN))) if draw(st.integers(0, 9)) == 0 else draw(GRID)
            observations[key] = Observation(
                key, value, moment, day, draw(st.booleans()), stale=draw(st.integers(0, 9)) == 0
            )
        steps.append((moment, observations))
    return steps


def run_vectorised(
    rules: list[dict[str, Any]], steps: list[tuple[datetime, dict[str, Observation]]]
) -> tuple[list[list[dict[str, Any]]], pd.DataFrame]:
    frame = oracle.to_frame(rules)
    fired = []
    for moment, observations in steps:
        evaluation = evaluate(frame, observations, moment)
        frame = apply_state(frame, evaluation.state)
        fired.append(oracle.fired_from_frame(evaluation.fired))
    return fired, frame


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Evaluating each rule alone as well multiplies the work by the number of rules.
PROPERTY_ALONE = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(random_rules(), random_steps())
def test_vectorised_evaluation_equals_the_oracle_on_random_rules_and_series(
    rules: list[dict[str, Any]], steps: list[tuple[datetime, dict[str, Observation]]]
) -> None:
    frame = oracle.to_frame(rules)
    for moment, observations in steps:
        evaluation = evaluate(frame, observations, moment)
        expected_changes, expected_fired = oracle.oracle_evaluate(rules, observations, moment)
        assert oracle.same_changes(oracle.state_from_frame(evaluation.state), expected_changes)
        assert oracle.same_records(oracle.fired_from_frame(evaluation.fired), expected_fired)
        frame = apply_state(frame, evaluation.state)
        rules = oracle.apply_changes(rules, expected_changes)


@PROPERTY
@given(random_rules(), random_steps())
def test_an_evaluation_says_where_its_rows_are_and_which_of_them_changed_a_decision(
    rules: list[dict[str, Any]], steps: list[tuple[datetime, dict[str, Observation]]]
) -> None:
    """``positions`` are the changed rows' places in the evaluated frame; ``decided`` is True exactly for
    those that fired or changed status, armed, reference or last alert session (the rest only judged);
    ``advance`` makes of the frame what ``apply_state`` does."""
    frame = oracle.to_frame(rules)
    for moment, observations in steps:
        evaluation = evaluate(frame, observations, moment)
        assert evaluation.positions is not None and evaluation.decided is not None
        assert frame.index[evaluation.positions].tolist() == evaluation.state.index.tolist()
        before = frame.iloc[evaluation.positions]
        after = evaluation.state
        decided = evaluation.state.index.isin(evaluation.fired["rule_id"])
        for column in ("status", "armed", "last_fired_session"):
            decided |= after[column].to_numpy() != before[column].to_numpy()
        old, new = before["reference"].to_numpy(), after["reference"].to_numpy()
        decided |= ~((old == new) | (np.isnan(old) & np.isnan(new)))
        assert evaluation.decided.tolist() == decided.tolist()
        advanced = advance(frame, evaluation)
        frame = apply_state(frame, evaluation.state)
        pd.testing.assert_frame_equal(advanced, frame)


@PROPERTY_ALONE
@given(random_rules(), random_steps())
def test_rules_evaluated_together_give_what_each_gives_alone(
    rules: list[dict[str, Any]], steps: list[tuple[datetime, dict[str, Observation]]]
) -> None:
    together, final = run_vectorised(rules, steps)
    for rule in rules:
        alone, final_alone = run_vectorised([rule], steps)
        mine = [[f for f in step if f["rule_id"] == rule["rule_id"]] for step in together]
        assert all(oracle.same_records(a, b) for a, b in zip(alone, mine, strict=True))
        pd.testing.assert_frame_equal(final_alone, final.loc[[rule["rule_id"]]], check_categorical=False)


@PROPERTY
@given(random_rules(expiring=False), st.data())
def test_nan_stale_or_missing_observations_change_nothing(
    rules: list[dict[str, Any]], data: st.DataObject
) -> None:
    observations = {}
    for key in ("X", "Y"):
        choice = data.draw(st.sampled_from(["nan", "stale", "missing"]))
        if choice == "missing":
            continue
        value = NAN if choice == "nan" else data.draw(GRID)
        close = data.draw(st.booleans())
        observations[key] = Observation(key, value, NOW, DAY0 + timedelta(days=5), close, choice == "stale")
    evaluation = evaluate(oracle.to_frame(rules), observations, NOW)
    assert evaluation.state.empty
    assert evaluation.fired.empty


@PROPERTY
@given(
    st.sampled_from(["above", "below"]),
    st.sampled_from([-10.0, -5.0, 5.0, 10.0, 100.0]),
    st.sampled_from([0.0, 0.01, 0.05, 0.1]),
    GRID,
    st.lists(st.one_of(GRID, st.just(NAN)), min_size=1, max_size=30),
)
def test_a_level_rule_fires_only_on_a_crossing_and_at_most_once_per_crossing(
    kind: str, level: float, band: float, created_on: float, values: list[float]
) -> None:
    """Every alert is at a value past the level, and before it the value was on the other side: below the
    level at creation, or back past the re-arm band since the previous alert."""
    # A band of 0 is below what users may type, and the sharpest test of the re-arm rule.
    spec = RuleSpec(LEAD, kind, level, window="3m", mode="close", band=band)
    rows, _ = rule_rows(spec, created_on, first_rule_id=1, chat_id=1, created_at=NOW)
    frame = rules_frame(rows)
    key = rows[0]["key"]

    def reached(value: float) -> bool:
        return value >= level if kind == "above" else value <= level

    def back(value: float) -> bool:
        edge = oracle.rearm_above(level, band) if kind == "above" else oracle.rearm_below(level, band)
        return value <= edge if kind == "above" else value >= edge

    crossed_since_last = not reached(created_on)  # armed at creation iff the condition did not hold
    for offset, value in enumerate(values):
        day = DAY0 + timedelta(days=offset + 1)
        evaluation = evaluate(frame, {key: Observation(key, value, NOW, day, True)}, NOW)
        frame = apply_state(frame, evaluation.state)
        if len(evaluation.fired):
            assert reached(value)
            assert crossed_since_last
            crossed_since_last = False
        elif not math.isnan(value) and back(value):
            crossed_since_last = True
