"""Which alert rules fire on new observations, and how their state moves: one pure, vectorised pass.

The rules frame
---------------
One row per stored rule row (a ``cross`` rule is two rows sharing ``group_id``), indexed by ``rule_id``
(int64), with the columns of ``RULE_COLUMNS``:

=====================  ==============  ==========================================================
column                 dtype           meaning
=====================  ==============  ==========================================================
chat_id                int64           the chat told when it fires
group_id               int64           rows made from one user rule (a cross) share it
key                    category        the observation key judged (``alerts.observations``)
kind                   int8            ABOVE, BELOW, MOVE, HIGH, SHIFT (``KIND_NAMES``)
level                  float64         the level in the key's units (NaN for HIGH)
band                   float64         re-arm band, a fraction (0.01)
mode                   int8            LIVE or CLOSE (``MODE_NAMES``)
once                   bool            done after the first alert
expires_at             datetime64[ns]  UTC, naive; NaT = never
paused                 bool            skipped by evaluation (but still expires)
status                 int8            ACTIVE, DONE, EXPIRED (``STATUS_NAMES``); only ACTIVE is judged
armed                  bool            a level or high rule may fire; a move rule has not fired this session
reference              float64         HIGH: the highest value seen; SHIFT: the value to measure from
last_value             float64         the last value the rule judged (NaN: none yet)
last_fired_session     int32           days since 1970-01-01 of the last alert's session, -1 = never
last_session           int32           the session of the last close judged, -1 = none
=====================  ==============  ==========================================================

The state columns (``STATE_COLUMNS``) are the last six; evaluation returns new values for them, and only
for rows where one changed.

Semantics
---------
- A rule judges the observation of its key only when it is present, finite and not stale; otherwise nothing
  about the rule changes, not even ``last_value``. A ``close`` rule judges only close observations of a
  session after its ``last_session`` (so one close is never judged twice); a ``live`` rule judges any
  observation, closes included.
- ``above L`` band b: armed and value >= L → fires and disarms; disarmed and value <= the re-arm level →
  re-arms without a message. ``below L`` mirrors it. The re-arm level moves away from L by b × |L|:
  L × (1 − b) above and L × (1 + b) below for a positive L, and for a negative L (a lagging lead) L × (1 + b)
  above and L × (1 − b) below, so a lead of −5 with a 1% band re-arms at −5.05 / −4.95.
- ``move L``: fires when |value| >= L, at most once per session (a later session re-arms it).
- ``high``: fires when value > reference while armed; the reference follows every new high (armed or not);
  re-arms when value <= reference × (1 − b). A live high rule's reference can be an intraday high.
- ``shift N``: fires when |value − reference| >= N and the reference becomes that value. A rule created
  while the value was unknown adopts the first value it judges as its reference, without firing.
- Expiry (``expires_at <= now``) wins over everything, pause included: the row becomes EXPIRED and does not
  fire. A ``once`` row that fires becomes DONE. Paused rows are otherwise left alone.
- Each row fires at most once per evaluation (there is one observation per key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from alerts.observations import Observation
from alerts.rules import RuleSpec, parse_rules_for_storage

ABOVE, BELOW, MOVE, HIGH, SHIFT = 0, 1, 2, 3, 4
KIND_NAMES: tuple[str, ...] = ("above", "below", "move", "high", "shift")
LIVE, CLOSE = 0, 1
MODE_NAMES: tuple[str, ...] = ("live", "close")
ACTIVE, DONE, EXPIRED = 0, 1, 2
STATUS_NAMES: tuple[str, ...] = ("active", "done", "expired")
NO_SESSION = -1

RULE_COLUMNS: dict[str, Any] = {
    "chat_id": np.dtype("int64"),
    "group_id": np.dtype("int64"),
    "key": "category",
    "kind": np.dtype("int8"),
    "level": np.dtype("float64"),
    "band": np.dtype("float64"),
    "mode": np.dtype("int8"),
    "once": np.dtype("bool"),
    "expires_at": np.dtype("datetime64[ns]"),
    "paused": np.dtype("bool"),
    "status": np.dtype("int8"),
    "armed": np.dtype("bool"),
    "reference": np.dtype("float64"),
    "last_value": np.dtype("float64"),
    "last_fired_session": np.dtype("int32"),
    "last_session": np.dtype("int32"),
}
STATE_COLUMNS: tuple[str, ...] = (
    "status",
    "armed",
    "reference",
    "last_value",
    "last_fired_session",
    "last_session",
)
FIRED_COLUMNS: tuple[str, ...] = (
    "rule_id",
    "chat_id",
    "group_id",
    "key",  # categorical
    "kind",  # categorical name: above, below, move, high, shift
    "level",
    "value",  # the value that fired the rule
    "previous_value",  # the rule's last judged value before it (NaN: none)
    "reference",  # HIGH: the previous high; SHIFT: the value it moved from
    "time",  # the observation's time, tz-aware UTC
    "session",  # the observation's trading date, tz-naive midnight like a closes-frame index
    "source",  # categorical: "close" or "live"
    "once",  # the rule is now done
)

_EPOCH = date(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NS_PER_DAY = 86_400 * 10**9
_SOURCE_NAMES = ("live", "close")  # indexed by is_close


def session_number(day: date) -> int:
    """A session as stored in the rules frame: days since 1970-01-01."""
    return (day - _EPOCH).days


def session_date(number: int) -> date | None:
    return None if number < 0 else _EPOCH + timedelta(days=int(number))


def rearm_level(kind: int, level: float, band: float) -> float:
    """Where an ABOVE or BELOW row re-arms (see the module docstring for negative levels)."""
    away = -1.0 if kind == ABOVE else 1.0
    sign = 1.0 if level >= 0 else -1.0
    return level * (1.0 + away * sign * band)


# --- building rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowState:
    """The state columns of one new row."""

    armed: bool
    reference: float
    last_value: float
    last_fired_session: int = NO_SESSION
    last_session: int = NO_SESSION


@dataclass(frozen=True)
class InitialState:
    """The state a new rule starts in: one ``RowState`` per row of ``parse_rules_for_storage(spec)``.

    ``already_holds`` is True when the condition is met at creation (RUT is already above 3,000, or sits
    at its high, or moved 2% today): the rule then waits for the next crossing, and the bot says so. It is
    always False for a cross, one of whose two directions is always open."""

    rows: tuple[RowState, ...]
    already_holds: bool
    value: float


def initial_state(
    spec: RuleSpec, current: Observation | float | None, *, all_time_high: float | None = None
) -> InitialState:
    """The state of ``spec``'s rows created when its key reads ``current``.

    A level row is armed iff its condition does not hold yet (``above L``: value < L); when the value is
    unknown it is not armed, so an unknown start can never fire at once. A ``high`` rule's reference is the
    all-time closing high (``all_time_high``, or the value itself when higher or not given). A ``move`` that
    already moved enough this session waits for the next one. When ``current`` is a close observation, that
    close counts as judged, so a ``close`` rule starts with the next session.
    """
    if isinstance(current, Observation):
        value = current.value if not current.stale else math.nan
        session: int | None = session_number(current.session)
        closed = current.is_close
    else:
        value = math.nan if current is None else float(current)
        session, closed = None, False
    known = math.isfinite(value)
    last_session = session if closed and session is not None else NO_SESSION
    rows: list[RowState] = []
    holds = False
    for kind, level in zip(spec.row_kinds, spec.row_levels, strict=True):
        if kind in ("above", "below"):
            met = known and (value >= level if kind == "above" else value <= level)
            holds = holds or met
            rows.append(RowState(known and not met, math.nan, value, NO_SESSION, last_session))
        elif kind == "move":
            met = known and abs(value) >= level
            holds = met
            fired = session if met and session is not None else NO_SESSION
            rows.append(RowState(not met, math.nan, value, fired, last_session))
        elif kind == "high":
            high = all_time_high if all_time_high is not None and math.isfinite(all_time_high) else math.nan
            reference = float(np.fmax(high, value))
            holds = known and value >= reference
            rows.append(RowState(True, reference, value, NO_SESSION, last_session))
        else:  # shift: measured from the value at creation
            rows.append(RowState(True, value, value, NO_SESSION, last_session))
    return InitialState(tuple(rows), holds and spec.kind != "cross", value)


def rule_rows(
    spec: RuleSpec,
    current: Observation | float | None,
    *,
    first_rule_id: int,
    chat_id: int,
    created_at: datetime,
    all_time_high: float | None = None,
) -> tuple[list[dict[str, Any]], InitialState]:
    """Complete rules-frame rows for a new ``spec`` (ids from ``first_rule_id``), and its initial state."""
    start = initial_state(spec, current, all_time_high=all_time_high)
    expires = None if spec.expires_after is None else created_at + spec.expires_after
    rows = []
    for offset, (stored, state) in enumerate(zip(parse_rules_for_storage(spec), start.rows, strict=True)):
        rows.append(
            {
                "rule_id": first_rule_id + offset,
                "chat_id": chat_id,
                "group_id": first_rule_id,
                "key": stored["key"],
                "kind": stored["kind"],
                "level": stored["level"],
                "band": stored["band"],
                "mode": stored["mode"],
                "once": stored["once"],
                "expires_at": expires,
                "paused": False,
                "status": ACTIVE,
                "armed": state.armed,
                "reference": state.reference,
                "last_value": state.last_value,
                "last_fired_session": state.last_fired_session,
                "last_session": state.last_session,
            }
        )
    return rows, start


def rules_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A rules frame with ``RULE_COLUMNS`` dtypes from row mappings (``rule_id`` plus every column).
    ``kind``, ``mode`` and ``status`` may be names or codes; ``expires_at`` a tz-aware datetime or None."""
    data: dict[str, Any] = {}
    for column, dtype in RULE_COLUMNS.items():
        values = [row[column] for row in rows]
        if column == "kind":
            values = [KIND_NAMES.index(v) if isinstance(v, str) else v for v in values]
        elif column == "mode":
            values = [MODE_NAMES.index(v) if isinstance(v, str) else v for v in values]
        elif column == "status":
            values = [STATUS_NAMES.index(v) if isinstance(v, str) else v for v in values]
        elif column == "expires_at":
            data[column] = np.array([_utc_ns(v) for v in values], dtype="datetime64[ns]")
            continue
        if column == "key":
            data[column] = pd.Categorical([str(v) for v in values])
        else:
            data[column] = np.asarray(values, dtype=dtype)
    index = pd.Index(np.asarray([row["rule_id"] for row in rows], dtype=np.int64), name="rule_id")
    return pd.DataFrame(data, index=index)


def _utc_ns(moment: datetime | None) -> np.datetime64:
    if moment is None:
        return np.datetime64("NaT", "ns")
    return np.datetime64(_epoch_ns(moment), "ns")


def _epoch_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"times must be timezone-aware, got {moment!r}")
    return (moment - _EPOCH_UTC) // _MICROSECOND * 1000  # datetimes are exact to the microsecond


# --- evaluation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation of a rules frame changed.

    ``fired`` has one row per alert to send (``FIRED_COLUMNS``). ``new`` holds every row's new
    ``STATE_COLUMNS``, one array each in the frame's order (a row that did not change keeps its values);
    ``positions`` are the rows that changed, and ``decided`` says which of those fired or changed what
    decides whether and when a rule fires (status, armed, reference, last alert session): the others only
    judged a new ``last_value`` or ``last_session``. ``ids`` are the frame's rule ids. With these the store
    writes the state back by position, without looking up a rule id or building ``state``.
    """

    fired: pd.DataFrame
    ids: np.ndarray
    new: Mapping[str, np.ndarray]
    positions: np.ndarray
    decided: np.ndarray

    @cached_property
    def state(self) -> pd.DataFrame:
        """The new ``STATE_COLUMNS`` of only the rows that changed, indexed by rule_id."""
        rows = self.positions
        # copy=False: the gathered arrays are fresh already.
        return pd.DataFrame(
            {column: self.new[column][rows] for column in STATE_COLUMNS},
            index=pd.Index(self.ids[rows], name="rule_id"),
            copy=False,
        )


def evaluate(rules: pd.DataFrame, observations: Mapping[str, Observation], now: datetime) -> Evaluation:
    """Judge every rule on the observations of its key at ``now``; see the module docstring."""
    now_ns = np.datetime64(_epoch_ns(now), "ns")
    ids = rules.index.to_numpy()

    key_column = rules["key"]
    if isinstance(key_column.dtype, pd.CategoricalDtype):
        codes = key_column.cat.codes.to_numpy()
        keys = [str(k) for k in key_column.cat.categories]
    else:
        codes, uniques = pd.factorize(key_column)
        keys = [str(k) for k in uniques]

    # One slot per distinct key plus a last, empty one that code -1 (no key) lands on, so a rule's
    # observation is a take from these small arrays rather than a lookup per rule.
    slots = len(keys) + 1
    o_valid = np.zeros(slots, dtype=bool)
    o_value = np.full(slots, np.nan)
    o_close = np.zeros(slots, dtype=bool)
    o_session = np.full(slots, NO_SESSION, dtype=np.int32)
    o_time = np.zeros(slots, dtype=np.int64)
    for slot, key in enumerate(keys):
        seen = observations.get(key)
        if seen is None or seen.stale or not math.isfinite(seen.value):
            continue
        o_valid[slot] = True
        o_value[slot] = seen.value
        o_close[slot] = seen.is_close
        o_session[slot] = session_number(seen.session)
        o_time[slot] = _epoch_ns(seen.time)

    codes = codes.astype(np.intp)  # indexing with intp skips a conversion per take
    valid = o_valid[codes]
    value = o_value[codes]
    is_close = o_close[codes]
    session = o_session[codes]

    status = rules["status"].to_numpy()
    kind = rules["kind"].to_numpy()
    level = rules["level"].to_numpy()
    band = rules["band"].to_numpy()
    armed = rules["armed"].to_numpy()
    reference = rules["reference"].to_numpy()
    last_value = rules["last_value"].to_numpy()
    last_fired = rules["last_fired_session"].to_numpy()
    last_session = rules["last_session"].to_numpy()
    once = rules["once"].to_numpy()

    active = status == ACTIVE
    expiring = active & (rules["expires_at"].to_numpy() <= now_ns)  # NaT compares False: never expires
    judged = active & ~expiring & ~rules["paused"].to_numpy() & valid
    judged &= (rules["mode"].to_numpy() == LIVE) | (is_close & (session > last_session))

    # Each kind's arithmetic runs only on the judged rows of that kind (gathered by index), and only the
    # few rows that fire or change state are scattered back: a million rules cost a few passes over
    # memory rather than one per formula.
    fires: list[np.ndarray] = []  # rows that fire
    flips: list[np.ndarray] = []  # rows whose armed state flips
    moves: list[np.ndarray] = []  # rows whose reference moves...
    moved_to: list[np.ndarray] = []  # ...to these values
    judged_rows = np.flatnonzero(judged)
    judged_kinds = kind[judged_rows]
    with np.errstate(invalid="ignore"):
        for code in (ABOVE, BELOW, MOVE, HIGH, SHIFT):
            rows = judged_rows[judged_kinds == code]
            if len(rows) == 0:
                continue
            v, lv, was_armed = value[rows], level[rows], armed[rows]
            if code == ABOVE:
                hit = was_armed & (v >= lv)
                flip = hit | (~was_armed & (v <= lv * (1.0 - np.copysign(band[rows], lv))))
            elif code == BELOW:
                hit = was_armed & (v <= lv)
                flip = hit | (~was_armed & (v >= lv * (1.0 + np.copysign(band[rows], lv))))
            elif code == HIGH:
                ref = reference[rows]
                hit = was_armed & (v > ref)
                up = ~(v <= ref)  # follows a new high; a first value (no reference yet) becomes the high
                ref = np.where(up, v, ref)
                flip = hit | (~was_armed & (v <= ref * (1.0 - band[rows])))
                moves.append(rows[up])
                moved_to.append(v[up])
            elif code == MOVE:
                fresh = session[rows] > last_fired[rows]  # no alert yet this session
                hit = fresh & (np.abs(v) >= lv)
                flip = (fresh & ~hit) != was_armed  # armed: may still fire this session
            else:
                ref = reference[rows]
                unknown = np.isnan(ref)  # created without a value: adopt the first one silently
                hit = ~unknown & (np.abs(v - ref) >= lv)
                moved = (unknown | hit) & ~(v == ref)
                moves.append(rows[moved])
                moved_to.append(v[moved])
                flip = np.zeros(len(rows), dtype=bool)  # a shift rule has no armed state: kept as it is
            fires.append(rows[hit])
            flips.append(rows[flip])

    fire_rows = np.sort(np.concatenate([np.empty(0, np.intp), *fires]))
    flip_rows = np.concatenate([np.empty(0, np.intp), *flips])
    move_rows = np.concatenate([np.empty(0, np.intp), *moves])
    expiring_rows = np.flatnonzero(expiring)

    new_armed = armed.copy()
    new_armed[flip_rows] = ~armed[flip_rows]
    new_reference = reference.copy()
    new_reference[move_rows] = np.concatenate([np.empty(0), *moved_to])
    new_last_fired = last_fired.copy()
    new_last_fired[fire_rows] = session[fire_rows]
    new_status = status.copy()
    new_status[expiring_rows] = EXPIRED
    new_status[fire_rows[once[fire_rows]]] = DONE
    new_last_value = np.where(judged, value, last_value)
    consumed_close = judged & is_close & (session > last_session)
    new_last_session = np.where(consumed_close, session, last_session)

    # What decides whether and when a rule fires changed only on these rows (or the row fired).
    decides = np.zeros(len(rules), dtype=bool)
    for touched in (fire_rows, flip_rows, move_rows, expiring_rows):
        decides[touched] = True
    fire = np.zeros(len(rules), dtype=bool)
    fire[fire_rows] = True
    # Only judged or expiring rows can change. A judged value is finite, so != is a real change even
    # against a NaN last value.
    changed = decides | consumed_close | (judged & (value != last_value))
    rows = np.flatnonzero(changed)
    new = {
        "status": new_status,
        "armed": new_armed,
        "reference": new_reference,
        "last_value": new_last_value,
        "last_fired_session": new_last_fired.astype(np.int32, copy=False),
        "last_session": new_last_session.astype(np.int32, copy=False),
    }

    hits = np.flatnonzero(fire)
    hit_slots = codes[hits]
    # Categoricals built from codes: string columns of object dtype would cost more than the evaluation.
    fired = pd.DataFrame(
        {
            "rule_id": ids[hits],
            "chat_id": rules["chat_id"].to_numpy()[hits],
            "group_id": rules["group_id"].to_numpy()[hits],
            "key": pd.Categorical.from_codes(hit_slots, categories=pd.Index(keys, dtype=object)),
            "kind": pd.Categorical.from_codes(kind[hits], categories=pd.Index(KIND_NAMES, dtype=object)),
            "level": level[hits],
            "value": value[hits],
            "previous_value": last_value[hits],
            "reference": reference[hits],
            "time": pd.DatetimeIndex(o_time[hit_slots].astype("datetime64[ns]")).tz_localize(UTC),
            "session": (o_session[hit_slots].astype(np.int64) * _NS_PER_DAY).astype("datetime64[ns]"),
            "source": pd.Categorical.from_codes(
                is_close[hits].astype(np.int8), categories=pd.Index(_SOURCE_NAMES, dtype=object)
            ),
            "once": once[hits],
        },
        columns=list(FIRED_COLUMNS),
        copy=False,
    )
    return Evaluation(fired, ids, new, rows, decides[rows])


def advance(rules: pd.DataFrame, evaluation: Evaluation) -> pd.DataFrame:
    """``rules`` after ``evaluation`` of that very frame: its state columns replaced by the evaluation's new
    ones (a new frame sharing the other columns; ``rules`` is not modified). ``apply_state`` without a
    lookup by rule id."""
    if len(evaluation.ids) != len(rules) or not np.array_equal(evaluation.ids, rules.index.to_numpy()):
        raise ValueError("the evaluation is of another rules frame")
    columns = {c: evaluation.new[c] if c in STATE_COLUMNS else rules[c] for c in rules.columns}
    return pd.DataFrame(columns, index=rules.index, copy=False)


def apply_state(rules: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """``rules`` with an evaluation's new state written in (a new frame; ``rules`` is not modified)."""
    if state.empty:
        return rules
    positions = rules.index.get_indexer(state.index)
    if (positions < 0).any():
        raise KeyError("the state holds rule ids that are not in the rules frame")
    columns: dict[str, Any] = {}
    for column in rules.columns:
        if column in STATE_COLUMNS:
            values = rules[column].to_numpy().copy()
            values[positions] = state[column].to_numpy()
            columns[column] = values
        else:
            columns[column] = rules[column]
    # copy=False: the untouched columns are shared, not copied (pandas copy-on-write keeps ``rules`` safe).
    return pd.DataFrame(columns, index=rules.index, copy=False)
