"""alerts/rule_table.py and how the store uses it: rules in columns written by position, spare room for new
rules, and the snapshot a start loads instead of the rules table when the rules version still matches."""

from __future__ import annotations

import math
import sqlite3
import stat
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.evaluate import STATUS_NAMES, apply_state, evaluate, rules_frame
from alerts.observations import Observation, close_time
from alerts.rule_table import RuleTable, read_snapshot
from alerts.rules import parse_rule
from alerts.store import AlertStore
from alerts.store.rules import SNAPSHOT_SUFFIX
from database.connection import open_database

NOW = datetime(2024, 1, 18, 21, 30, tzinfo=UTC)
JAN_17, JAN_18 = date(2024, 1, 17), date(2024, 1, 18)
CHAT, OTHER = 1001, 2002
RUT_JAN_17, RUT_JAN_18 = 1913.170044, 1923.650024  # real ^RUT closes (shared/data/RUT_daily.csv)


def close_of(key: str, value: float, day: date) -> Observation:
    return Observation(key, value, close_time(day), day, True)


def some_rules(store: AlertStore) -> None:
    """Rules of every kind, two chats, a paused one and one that fired: a state worth reloading."""
    store.rules.add(CHAT, parse_rule("rut cross 2000 band 0.5%"), RUT_JAN_18, NOW)
    store.rules.add(
        CHAT, parse_rule("spx above 4750 close once for 30d"), close_of("^GSPC", 4739.21, JAN_17), NOW
    )
    store.rules.add(CHAT, parse_rule("rut high"), RUT_JAN_18, NOW, all_time_high=2442.74)
    store.rules.add(OTHER, parse_rule("gap shift 3"), None, NOW)
    paused, _ = store.rules.add(OTHER, parse_rule("rut move 2%"), None, NOW)
    store.rules.set_paused(OTHER, True, paused)
    evaluation = evaluate(store.rules.frame, {"^RUT": Observation("^RUT", 2001.0, NOW, JAN_18, False)}, NOW)
    store.commit(evaluation, [(CHAT, "RUT crossed 2,000", "alert")], NOW)


def snapshot_of(db_path: Path) -> Path:
    return Path(f"{db_path}{SNAPSHOT_SUFFIX}")


def version_of(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT value FROM sequences WHERE name = 'rules_version'").fetchone()[0])


# --- the table ------------------------------------------------------------------------------------------


def test_rules_added_one_by_one_go_into_spare_room_without_moving_the_others(store: AlertStore) -> None:
    """A new rule is written after the others in arrays that have room for it: the rules already held are
    not copied (what made each /alert copy a million-row frame), until the room runs out."""
    store.rules.add(CHAT, parse_rule("rut above 2000"), RUT_JAN_18, NOW)
    table = store.rules.table
    before = table.column("level")
    for level in range(2001, 2031):
        store.rules.add(CHAT, parse_rule(f"rut above {level}"), RUT_JAN_18, NOW)
    assert np.shares_memory(before, table.column("level"))
    assert table.column("level").tolist() == [float(v) for v in range(2000, 2031)]
    assert store.rules.frame["level"].tolist() == table.column("level").tolist()


def test_a_new_key_keeps_the_key_names_sorted_and_every_row_its_key() -> None:
    """Key codes are re-coded when a key sorts before those held, as a table read afresh would hold them."""
    frame = rules_frame([row(1, key="^RUT"), row(2, key="^RUT:move")])
    table = RuleTable.from_frame(frame)
    table.append(rules_frame([row(3, key="GAP"), row(4, key="^GSPC")]))

    assert table.key_names == ["GAP", "^GSPC", "^RUT", "^RUT:move"]
    assert table.frame["key"].astype(str).tolist() == ["^RUT", "^RUT:move", "GAP", "^GSPC"]
    table.keep(np.array([True, False, True, False]))
    assert table.key_names == ["GAP", "^RUT"]
    assert table.frame["key"].astype(str).tolist() == ["^RUT", "GAP"]
    assert table.positions([3, 2, 1]).tolist() == [1, -1, 0]


def test_rows_must_come_after_every_rule_held() -> None:
    table = RuleTable.from_frame(rules_frame([row(5)]))
    with pytest.raises(ValueError, match="rule_id order"):
        table.append(rules_frame([row(4)]))


def row(rule_id: int, **fields: Any) -> dict[str, Any]:
    values = {
        "rule_id": rule_id,
        "chat_id": CHAT,
        "group_id": rule_id,
        "key": "^RUT",
        "kind": "above",
        "level": 2000.0,
        "band": 0.01,
        "mode": "live",
        "once": False,
        "expires_at": None,
        "paused": False,
        "status": "active",
        "armed": True,
        "reference": math.nan,
        "last_value": 1900.0,
        "last_fired_session": -1,
        "last_session": -1,
    }
    values.update(fields)
    return values


# --- commit by position -----------------------------------------------------------------------------------

KINDS = ("above", "below", "move", "high", "shift")


@st.composite
def stored_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    rules = []
    for rule_id in range(1, draw(st.integers(1, 12)) + 1):
        kind = draw(st.sampled_from(KINDS))
        rules.append(
            row(
                rule_id,
                chat_id=draw(st.sampled_from([CHAT, OTHER])),
                key=draw(st.sampled_from(["^RUT", "^GSPC"])),
                kind=kind,
                level=math.nan if kind == "high" else draw(st.sampled_from([1.0, 3.0, 1900.0, 2000.0])),
                band=draw(st.sampled_from([0.0, 0.01, 0.05])),
                mode=draw(st.sampled_from(["live", "close"])),
                once=draw(st.booleans()),
                expires_at=NOW + timedelta(hours=draw(st.integers(1, 30))) if draw(st.booleans()) else None,
                paused=draw(st.integers(0, 5)) == 0,
                armed=draw(st.booleans()),
                reference=draw(st.sampled_from([math.nan, 1950.0, 2000.0])),
                last_value=draw(st.sampled_from([math.nan, 1950.0])),
            )
        )
    return rules


@st.composite
def refreshes(draw: st.DrawFn) -> list[tuple[datetime, dict[str, Observation]]]:
    steps, day, moment = [], JAN_18, NOW
    for _ in range(draw(st.integers(1, 6))):
        day += timedelta(days=draw(st.sampled_from([0, 1])))
        moment += timedelta(hours=draw(st.integers(1, 8)))
        observed = {}
        for key in ("^RUT", "^GSPC"):
            value = draw(st.sampled_from([1.0, 2.5, 1890.0, 1950.0, 2000.0, 2050.0, math.nan]))
            observed[key] = Observation(key, value, moment, day, draw(st.booleans()))
        steps.append((moment, observed))
    return steps


def store_with(path: Path, rules: list[dict[str, Any]]) -> AlertStore:
    """A store whose rules table holds ``rules`` (written as the store writes them), loaded afresh."""
    db = open_database(path)
    AlertStore(db)  # migrates
    with db.atomic():
        for rule in rules:
            db.table("rules").insert(
                {
                    **rule,
                    "spec": f"rule {rule['rule_id']}",
                    "reference": None if math.isnan(rule["reference"]) else rule["reference"],
                    "last_value": None if math.isnan(rule["last_value"]) else rule["last_value"],
                    "expires_at": None if rule["expires_at"] is None else rule["expires_at"].isoformat(),
                    "created_at": NOW.isoformat(),
                }
            )
    return AlertStore(db)


def disk_rows(db: sqlite_utils.Database) -> list[tuple[Any, ...]]:
    return db.execute("SELECT * FROM rules ORDER BY rule_id").fetchall()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored_rules(), refreshes())
def test_commit_by_position_writes_what_a_lookup_by_rule_id_writes(
    rules: list[dict[str, Any]], steps: list[tuple[datetime, dict[str, Observation]]]
) -> None:
    """Two stores on the same rules: one commits each evaluation by the positions it carries, the other an
    evaluation of its rules in reverse order, looked up by rule id and compared with memory (the way
    commit worked before).
    Disk and memory agree after every refresh, and memory is what ``apply_state`` makes of the frame."""
    with tempfile.TemporaryDirectory() as folder:
        by_position = store_with(Path(folder) / "a.db", rules)
        by_id = store_with(Path(folder) / "b.db", rules)
        for moment, observed in steps:
            frame = by_position.rules.frame.copy()
            evaluation = evaluate(by_position.rules.frame, observed, moment)
            by_position.commit(evaluation, [], moment)
            # The same rules in the other order: its positions are not the store's, so it looks them up.
            backwards = evaluate(by_id.rules.frame.iloc[::-1], observed, moment)
            by_id.commit(backwards, [], moment)

            assert disk_rows(by_position.db) == disk_rows(by_id.db)
            pd.testing.assert_frame_equal(by_position.rules.frame, by_id.rules.frame)
            pd.testing.assert_frame_equal(by_position.rules.frame, apply_state(frame, evaluation.state))
            assert by_position.rules.active.index.tolist() == by_id.rules.active.index.tolist()
        by_position.rules.checkpoint()
        by_id.rules.checkpoint()
        assert disk_rows(by_position.db) == disk_rows(by_id.db)
        by_position.db.close()
        by_id.db.close()


def test_commit_of_an_evaluation_of_another_frame_looks_the_rows_up(store: AlertStore) -> None:
    """An evaluation of a copy with a row fewer (its positions point elsewhere) lands on the right rows."""
    first, _ = store.rules.add(CHAT, parse_rule("rut above 1920"), RUT_JAN_17, NOW)
    second, _ = store.rules.add(CHAT, parse_rule("rut above 1915"), RUT_JAN_17, NOW)
    evaluation = evaluate(
        store.rules.frame.iloc[1:], {"^RUT": Observation("^RUT", 1930.0, NOW, JAN_18, False)}, NOW
    )
    assert evaluation.positions is not None and evaluation.positions.tolist() == [0]

    store.commit(evaluation, [], NOW)

    assert store.rules.frame["armed"].tolist() == [True, False]
    assert store.rules.frame["last_value"].tolist() == [RUT_JAN_17, 1930.0]
    assert store.db.execute("SELECT armed FROM rules WHERE rule_id = ?", [second]).fetchone() == (0,)
    assert store.db.execute("SELECT armed FROM rules WHERE rule_id = ?", [first]).fetchone() == (1,)


# --- the rules version and the snapshot ---------------------------------------------------------------------


def test_every_write_to_the_rules_changes_the_rules_version(
    store: AlertStore, db: sqlite_utils.Database
) -> None:
    """Add, pause, commit, checkpoint, move, delete, deactivate, forget: each leaves a new version."""
    versions = [version_of(db)]

    def changed() -> bool:
        versions.append(version_of(db))
        return versions[-1] != versions[-2]

    number, _ = store.rules.add(CHAT, parse_rule("rut cross 2000"), RUT_JAN_18, NOW)
    assert changed()
    store.rules.add(CHAT, parse_rule("rut above 2100"), RUT_JAN_18, NOW)
    assert changed()
    store.rules.set_paused(CHAT, True, number)
    assert changed()
    store.rules.set_paused(CHAT, False)
    assert changed()
    store.commit(
        evaluate(store.rules.frame, {"^RUT": Observation("^RUT", 2001.0, NOW, JAN_18, False)}, NOW), [], NOW
    )
    assert changed()
    store.rules.checkpoint()
    assert changed()
    store.move_chat(CHAT, OTHER)
    assert changed()
    store.rules.delete_group(OTHER, number)
    assert changed()
    store.deactivate_chat(OTHER, NOW)
    assert changed()
    store.forget_chat(OTHER)
    assert changed()
    store.outbox.queue(CHAT, "not a rule", "digest", NOW)
    assert not changed()


def test_a_start_loads_the_snapshot_while_its_version_matches(store: AlertStore, db_path: Path) -> None:
    """After a checkpoint the next store loads the same rules from the snapshot, not from the table: a row
    changed behind the store's back (without a new version) does not show, which proves where they came
    from. Once the version moves, the table is read again."""
    some_rules(store)
    store.rules.checkpoint()
    expected = store.rules.active.copy()
    assert snapshot_of(db_path).is_file()

    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE rules SET level = 1234 WHERE kind = 'above'")
    from_snapshot = AlertStore(open_database(db_path))
    pd.testing.assert_frame_equal(from_snapshot.rules.active, expected)
    assert from_snapshot.rules.groups(CHAT) == store.rules.groups(CHAT)
    from_snapshot.db.close()

    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE sequences SET value = value + 1 WHERE name = 'rules_version'")
    from_table = AlertStore(open_database(db_path))
    assert set(from_table.rules.active.loc[from_table.rules.active["kind"] == 0, "level"]) == {1234.0}
    from_table.db.close()


def test_a_stale_snapshot_is_ignored_and_written_again_at_the_next_checkpoint(
    store: AlertStore, db_path: Path
) -> None:
    """A rule added after the checkpoint (then a crash: no checkpoint) is loaded from the table, not lost;
    that store's checkpoint writes a snapshot of the version now, which the next start uses."""
    some_rules(store)
    store.rules.checkpoint()
    added, _ = store.rules.add(CHAT, parse_rule("rut below 1800"), RUT_JAN_18, NOW)
    written = snapshot_of(db_path).stat().st_mtime_ns

    restarted = AlertStore(open_database(db_path))
    assert added in restarted.rules.active.index
    pd.testing.assert_frame_equal(restarted.rules.active, store.rules.active)
    restarted.rules.checkpoint()
    assert snapshot_of(db_path).stat().st_mtime_ns != written
    again = AlertStore(open_database(db_path))
    version = version_of(again.db)
    assert read_snapshot(snapshot_of(db_path), version, len(store.rules.active)) is not None
    pd.testing.assert_frame_equal(again.rules.active, store.rules.active)
    restarted.db.close()
    again.db.close()


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for at in range(len(data) // 3, len(data) // 3 + 64):
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), id="truncated"),
        pytest.param(flip_bytes, id="corrupt"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(lambda p: p.write_bytes(b"not a snapshot at all"), id="garbage"),
    ],
)
def test_a_damaged_snapshot_falls_back_to_the_table_and_loses_no_rule(
    store: AlertStore, db_path: Path, damage: Any
) -> None:
    some_rules(store)
    store.rules.checkpoint()
    expected = store.rules.active.copy()
    damage(snapshot_of(db_path))

    restarted = AlertStore(open_database(db_path))

    pd.testing.assert_frame_equal(restarted.rules.active, expected)
    assert restarted.rules.groups(CHAT) == store.rules.groups(CHAT)
    restarted.rules.checkpoint()  # and writes a whole one again
    assert read_snapshot(snapshot_of(db_path), version_of(restarted.db), len(expected)) is not None
    restarted.db.close()


def test_the_snapshot_is_private_to_its_owner(store: AlertStore, db_path: Path) -> None:
    """It holds chat ids and rules, like the database: mode 0600, and no partial file is left behind."""
    some_rules(store)
    store.rules.checkpoint()
    assert stat.S_IMODE(snapshot_of(db_path).stat().st_mode) == 0o600
    assert [p.name for p in db_path.parent.iterdir() if p.name.endswith(".partial")] == []


def test_a_snapshot_of_rules_that_finished_holds_only_the_active_ones(
    store: AlertStore, db_path: Path
) -> None:
    """The checkpoint compacts before it writes: the snapshot is what the table's active rows are."""
    once, _ = store.rules.add(
        CHAT, parse_rule("rut above 1920 close once"), close_of("^RUT", RUT_JAN_17, JAN_17), NOW
    )
    kept, _ = store.rules.add(CHAT, parse_rule("rut above 3000"), RUT_JAN_17, NOW)
    store.commit(evaluate(store.rules.frame, {"^RUT": close_of("^RUT", RUT_JAN_18, JAN_18)}, NOW), [], NOW)
    assert STATUS_NAMES[int(store.rules.frame.loc[once, "status"])] == "done"

    store.rules.checkpoint()

    table = read_snapshot(snapshot_of(db_path), version_of(store.db), 1)
    assert table is not None and table.ids.tolist() == [kept]
