"""The alert semantics as a plain loop over rule dicts: the oracle for ``alerts.evaluate``.

Written to be read, not to be fast: one rule at a time, one ``if`` per case, in the words of the issue. The
property tests check that the vectorised evaluation agrees with it, and a benchmark uses it as the baseline.

A rule here is a dict with the rules-frame columns in plain Python types: ``kind`` "above" | "below" |
"move" | "high" | "shift", ``mode`` "live" | "close", ``status`` "active" | "done" | "expired",
``expires_at`` a tz-aware datetime or None, sessions (``last_fired_session``, ``last_session``) a date or
None, and NaN for an unknown ``reference`` or ``last_value``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

import pandas as pd

from alerts import evaluate as vectorised
from alerts.observations import Observation

STATE_FIELDS = ("status", "armed", "reference", "last_value", "last_fired_session", "last_session")


def rearm_above(level: float, band: float) -> float:
    """An above rule re-arms at or below this: the band applies to |level|, away from the level."""
    return level * (1 - band) if level >= 0 else level * (1 + band)


def rearm_below(level: float, band: float) -> float:
    return level * (1 + band) if level >= 0 else level * (1 - band)


def crossing_dates(
    values: Iterable[tuple[date, float]], start: date, level: float, band: float, direction: str
) -> list[date]:
    """The dates from ``start`` on at which an ``above`` or ``below`` rule on ``level`` fires, judged once
    on each of ``values`` ((date, value) in date order; NaN is unknown and changes nothing). The rule is
    created on the last known value before ``start``: armed iff its condition does not hold there. It fires
    on reaching the level and re-arms only after going back past the band (``rearm_above``)."""
    armed: bool | None = None
    dates = []
    for day, value in values:
        if not math.isfinite(value):
            continue
        reached = value >= level if direction == "above" else value <= level
        if day < start:
            armed = not reached
            continue
        back = (
            value <= rearm_above(level, band) if direction == "above" else value >= rearm_below(level, band)
        )
        if armed and reached:
            dates.append(day)
            armed = False
        elif armed is not None and not armed and back:
            armed = True
    return dates


def oracle_evaluate(
    rules: list[dict[str, Any]], observations: Mapping[str, Observation], now: datetime
) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """The new state of each rule whose state changed (by rule_id) and the alerts, in rule order."""
    changed: dict[int, dict[str, Any]] = {}
    fired: list[dict[str, Any]] = []
    for rule in rules:
        before = {field: rule[field] for field in STATE_FIELDS}
        after = judge(rule, observations, now, fired)
        if not same_state(before, after):
            changed[rule["rule_id"]] = after
    return changed, fired


def judge(
    rule: dict[str, Any], observations: Mapping[str, Observation], now: datetime, fired: list[dict[str, Any]]
) -> dict[str, Any]:
    state = {field: rule[field] for field in STATE_FIELDS}
    if rule["status"] != "active":
        return state
    if rule["expires_at"] is not None and rule["expires_at"] <= now:
        state["status"] = "expired"
        return state
    if rule["paused"]:
        return state

    seen = observations.get(rule["key"])
    if seen is None or seen.stale or not math.isfinite(seen.value):
        return state
    if rule["mode"] == "close":
        if not seen.is_close:
            return state
        if rule["last_session"] is not None and seen.session <= rule["last_session"]:
            return state

    value, level, band = seen.value, rule["level"], rule["band"]
    armed, reference = rule["armed"], rule["reference"]
    fires = False
    kind = rule["kind"]
    if kind == "above":
        if armed and value >= level:
            fires, state["armed"] = True, False
        elif not armed and value <= rearm_above(level, band):
            state["armed"] = True
    elif kind == "below":
        if armed and value <= level:
            fires, state["armed"] = True, False
        elif not armed and value >= rearm_below(level, band):
            state["armed"] = True
    elif kind == "high":
        if armed and value > reference:
            fires, state["armed"] = True, False
        if math.isnan(reference) or value > reference:
            state["reference"] = value
        if not armed and value <= state["reference"] * (1 - band):
            state["armed"] = True
    elif kind == "move":
        new_session = rule["last_fired_session"] is None or seen.session > rule["last_fired_session"]
        if new_session and abs(value) >= level:
            fires = True
            state["armed"] = False
        else:
            state["armed"] = new_session
    elif kind == "shift":
        if math.isnan(reference):
            state["reference"] = value
        elif abs(value - reference) >= level:
            fires = True
            state["reference"] = value
    else:
        raise ValueError(f"unknown kind {kind!r}")

    state["last_value"] = value
    if seen.is_close and (rule["last_session"] is None or seen.session > rule["last_session"]):
        state["last_session"] = seen.session
    if fires:
        state["last_fired_session"] = seen.session
        if rule["once"]:
            state["status"] = "done"
        fired.append(
            {
                "rule_id": rule["rule_id"],
                "chat_id": rule["chat_id"],
                "group_id": rule["group_id"],
                "key": rule["key"],
                "kind": kind,
                "level": level,
                "value": value,
                "previous_value": rule["last_value"],
                "reference": reference,
                "time": seen.time,
                "session": seen.session,
                "source": "close" if seen.is_close else "live",
                "once": rule["once"],
            }
        )
    return state


def same_state(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(same_value(a[field], b[field]) for field in STATE_FIELDS)


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def apply_changes(
    rules: list[dict[str, Any]], changed: Mapping[int, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    return [{**rule, **changed.get(rule["rule_id"], {})} for rule in rules]


# --- translation to and from the vectorised rules frame -------------------------------------------------


def to_frame(rules: list[dict[str, Any]]) -> pd.DataFrame:
    """The rules frame ``alerts.evaluate`` takes for these rule dicts."""
    rows = []
    for rule in rules:
        row = dict(rule)
        for field in ("last_fired_session", "last_session"):
            day = rule[field]
            row[field] = vectorised.NO_SESSION if day is None else vectorised.session_number(day)
        rows.append(row)
    return vectorised.rules_frame(rows)


def _session(number: int) -> date | None:
    return vectorised.session_date(int(number))


def state_from_frame(state: pd.DataFrame) -> dict[int, dict[str, Any]]:
    """An ``Evaluation.state`` frame in the oracle's terms."""
    out: dict[int, dict[str, Any]] = {}
    for rule_id, row in zip(state.index, state.to_dict("records"), strict=True):
        out[int(rule_id)] = {
            "status": vectorised.STATUS_NAMES[int(row["status"])],
            "armed": bool(row["armed"]),
            "reference": float(row["reference"]),
            "last_value": float(row["last_value"]),
            "last_fired_session": _session(row["last_fired_session"]),
            "last_session": _session(row["last_session"]),
        }
    return out


def fired_from_frame(fired: pd.DataFrame) -> list[dict[str, Any]]:
    """An ``Evaluation.fired`` frame in the oracle's terms."""
    out = []
    for row in fired.to_dict("records"):
        out.append(
            {
                "rule_id": int(row["rule_id"]),
                "chat_id": int(row["chat_id"]),
                "group_id": int(row["group_id"]),
                "key": str(row["key"]),
                "kind": str(row["kind"]),
                "level": float(row["level"]),
                "value": float(row["value"]),
                "previous_value": float(row["previous_value"]),
                "reference": float(row["reference"]),
                "time": row["time"].to_pydatetime(),
                "session": row["session"].date(),
                "source": str(row["source"]),
                "once": bool(row["once"]),
            }
        )
    return out


def same_records(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(same_value(x[k], y[k]) for k in x) for x, y in zip(a, b, strict=True)
    )


def same_changes(a: Mapping[int, Mapping[str, Any]], b: Mapping[int, Mapping[str, Any]]) -> bool:
    return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)


When = TypeVar("When")


def above_fires(values: Iterable[tuple[When, float]], level: float, band: float = 0.01) -> list[When]:
    """When an ``above level`` rule fires over ``values`` (moment, value) in order, the rule created at the
    first of them: armed while below the level, it fires on reaching it, and re-arms only once a value falls
    to ``level`` × (1 − band). The semantics as a person would check them by hand, one value at a time."""
    iterator = iter(values)
    _, first = next(iterator)
    armed, fired = first < level, []
    for when, value in iterator:
        if armed and value >= level:
            fired.append(when)
            armed = False
        elif not armed and value <= level * (1 - band):
            armed = True
    return fired
