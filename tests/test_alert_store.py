"""alerts/store/ on a real SQLite file: the chats, rules and outbox rooms, and the one-transaction commit."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlite_utils

from alerts.evaluate import ACTIVE, DONE, EXPIRED, evaluate
from alerts.observations import Observation, close_time
from alerts.rules import parse_rule
from alerts.store import MAX_GROUPS_PER_CHAT, AlertStore, QuotaExceeded, day_bounds
from alerts.store.schema import MIGRATIONS
from database.connection import open_database
from database.migrations import migrate

NOW = datetime(2024, 1, 18, 21, 30, tzinfo=UTC)
JAN_17, JAN_18, JAN_19 = date(2024, 1, 17), date(2024, 1, 18), date(2024, 1, 19)
CHAT, OTHER = 1001, 2002
# Real ^RUT closes (shared/data/RUT_daily.csv), used as the values rules are created against.
RUT_JAN_17, RUT_JAN_18 = 1913.170044, 1923.650024


def close_of(key: str, value: float, day: date) -> Observation:
    return Observation(key, value, close_time(day), day, True)


def rule_rows_on_disk(path: Path) -> list[tuple[object, ...]]:
    """Every column of every rules row, read through a second connection: what a restart would see."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM rules ORDER BY rule_id").fetchall()


def outbox_rows(db: sqlite_utils.Database) -> list[dict[str, object]]:
    return list(db.query("SELECT * FROM outbox ORDER BY id"))


# --- migrations -------------------------------------------------------------------------------------


def test_migrations_re_run_safely_and_keep_what_is_stored(store: AlertStore, db_path: Path) -> None:
    """Running the migrations again, or opening a second store on the file, changes nothing."""
    store.rules.add(CHAT, parse_rule("rut above 2000"), RUT_JAN_18, NOW)
    store.outbox.queue(CHAT, "hello", "digest", NOW)
    before = rule_rows_on_disk(db_path)

    assert migrate(store.db, MIGRATIONS) == []
    again = AlertStore(open_database(db_path))
    assert migrate(again.db, MIGRATIONS) == []

    assert rule_rows_on_disk(db_path) == before
    assert [r["text"] for r in outbox_rows(again.db)] == ["hello"]
    applied = [r[0] for r in store.db.execute("SELECT name FROM migrations").fetchall()]
    assert applied.count("alerts-001-tables") == 1
    again.db.close()


# --- rules: groups, quota, scoping --------------------------------------------------------------------


def test_a_cross_rule_is_one_group_of_two_rows(store: AlertStore, db: sqlite_utils.Database) -> None:
    """`cross` stores an above and a below row under one group id, listed as one rule."""
    group_id, start = store.rules.add(CHAT, parse_rule("rut cross 2000"), RUT_JAN_18, NOW)

    rows = db.execute("SELECT rule_id, group_id, kind, armed FROM rules ORDER BY rule_id").fetchall()
    assert rows == [(group_id, group_id, "above", 1), (group_id + 1, group_id, "below", 0)]
    assert not start.already_holds
    (group,) = store.rules.groups(CHAT)
    assert group.number == group_id and group.armed == (True, False)
    assert group.spec.startswith("RUT cross 2,000")
    assert store.rules.count_groups(CHAT) == 1
    assert list(store.rules.active["group_id"]) == [group_id, group_id]


def test_the_51st_rule_is_refused_and_nothing_is_stored(store: AlertStore, db: sqlite_utils.Database) -> None:
    """The quota counts groups (a cross is one): past 50, QuotaExceeded and no row, chat or frame change."""
    for n in range(MAX_GROUPS_PER_CHAT):
        text = f"rut cross {2000 + n}" if n % 2 else f"spx above {5000 + n}"
        store.rules.add(CHAT, parse_rule(text), RUT_JAN_18, NOW)
    rows_before = db.execute("SELECT COUNT(*) FROM rules").fetchone()[0]
    assert rows_before == MAX_GROUPS_PER_CHAT * 3 // 2  # 25 crosses of two rows, 25 single rows
    frame_before = store.rules.active.copy()

    with pytest.raises(QuotaExceeded):
        store.rules.add(CHAT, parse_rule("rut above 3000"), RUT_JAN_18, NOW)

    assert db.execute("SELECT COUNT(*) FROM rules").fetchone()[0] == rows_before
    pd.testing.assert_frame_equal(store.rules.active, frame_before)
    assert store.rules.count_groups(CHAT) == MAX_GROUPS_PER_CHAT
    # The quota is per chat, and deleting one of the chat's rules frees a place.
    store.rules.add(OTHER, parse_rule("rut above 3000"), RUT_JAN_18, NOW)
    assert store.rules.delete_group(CHAT, store.rules.groups(CHAT)[0].number)
    store.rules.add(CHAT, parse_rule("rut above 3000"), RUT_JAN_18, NOW)
    assert store.rules.count_groups(CHAT) == MAX_GROUPS_PER_CHAT


def test_another_chats_id_deletes_pauses_and_lists_nothing(store: AlertStore, db_path: Path) -> None:
    """groups, delete_group and set_paused act only on the asking chat's rules: a number the chat never had
    (the other chat's #2), or its own #1 with the row key of the other chat's #1, changes nothing."""
    store.rules.add(CHAT, parse_rule("rut cross 2000"), RUT_JAN_18, NOW)
    mine, _ = store.rules.add(CHAT, parse_rule("rut above 2500"), RUT_JAN_18, NOW)
    theirs, _ = store.rules.add(OTHER, parse_rule("spx above 5000"), 4780.94, NOW)
    assert (mine, theirs) == (2, 1)
    disk_before, frame_before = rule_rows_on_disk(db_path), store.rules.active.copy()
    (first_of_mine, *_) = store.rules.groups(CHAT)

    assert store.rules.delete_group(OTHER, mine) is None
    assert store.rules.delete_group(OTHER, theirs, rule_id=first_of_mine.rule_id) is None
    assert store.rules.set_paused(OTHER, True, mine) == 0
    assert [g.spec.split(" · ")[0] for g in store.rules.groups(OTHER)] == ["SPX above 5,000"]

    assert rule_rows_on_disk(db_path) == disk_before
    pd.testing.assert_frame_equal(store.rules.active, frame_before)
    assert [g.number for g in store.rules.groups(CHAT)] == [1, mine]


def test_set_paused_changes_one_group_or_all_and_counts_groups(
    store: AlertStore, db: sqlite_utils.Database
) -> None:
    """Pausing counts groups changed (a cross is one), mirrors to memory, and a repeat changes nothing."""
    cross, _ = store.rules.add(CHAT, parse_rule("rut cross 2000"), RUT_JAN_18, NOW)
    single, _ = store.rules.add(CHAT, parse_rule("spx above 5000"), 4780.94, NOW)
    theirs, _ = store.rules.add(OTHER, parse_rule("spx above 5000"), 4780.94, NOW)

    mine = store.rules.active["chat_id"] == CHAT
    assert store.rules.set_paused(CHAT, True, cross) == 1
    assert store.rules.active.loc[mine & (store.rules.active["group_id"] == cross), "paused"].tolist() == [
        True,
        True,
    ]
    assert not store.rules.active.loc[mine & (store.rules.active["group_id"] == single), "paused"].item()
    assert store.rules.set_paused(CHAT, True) == 1  # only the single rule was still running
    assert store.rules.set_paused(CHAT, True) == 0
    assert (
        db.execute("SELECT COUNT(*) FROM rules WHERE chat_id = ? AND paused = 1", [CHAT]).fetchone()[0] == 3
    )
    assert not store.rules.active.loc[store.rules.active["chat_id"] == OTHER, "paused"].item()
    assert theirs == cross == 1  # each chat numbers its own alerts

    assert store.rules.set_paused(CHAT, False) == 2
    assert not store.rules.active["paused"].any()


def test_delete_group_removes_both_rows_from_disk_and_memory(
    store: AlertStore, db: sqlite_utils.Database
) -> None:
    """Deleting a cross deletes both of its rows, and the rule is no longer judged."""
    cross, _ = store.rules.add(CHAT, parse_rule("rut cross 2000"), RUT_JAN_18, NOW)
    kept, _ = store.rules.add(CHAT, parse_rule("spx above 5000"), 4780.94, NOW)

    assert store.rules.delete_group(CHAT, cross)
    assert not store.rules.delete_group(CHAT, cross)
    assert db.execute("SELECT group_id FROM rules").fetchall() == [(kept,)]
    assert list(store.rules.active["group_id"]) == [kept]


def test_rules_reload_from_sqlite_after_a_restart_with_the_same_state(
    store: AlertStore, db_path: Path
) -> None:
    """A new store over the same file (a restart) loads the same rules frame, states and expiries included."""
    store.rules.add(CHAT, parse_rule("rut cross 2000 band 0.5%"), RUT_JAN_18, NOW)
    store.rules.add(
        CHAT, parse_rule("spx above 4750 close once for 30d"), close_of("^GSPC", 4739.21, JAN_17), NOW
    )
    store.rules.add(CHAT, parse_rule("rut high"), RUT_JAN_18, NOW, all_time_high=2442.74)
    store.rules.add(OTHER, parse_rule("gap shift 3"), None, NOW)  # no value yet: NaNs must survive too
    paused, _ = store.rules.add(OTHER, parse_rule("rut move 2%"), None, NOW)
    store.rules.set_paused(OTHER, True, paused)
    # Move some state: the SPX close rule consumes a close and the cross's above row fires live.
    evaluation = evaluate(
        store.rules.active,
        {
            "^GSPC": close_of("^GSPC", 4780.94, JAN_18),
            "^RUT": Observation("^RUT", 2001.0, NOW, JAN_18, False),
        },
        NOW,
    )
    assert len(evaluation.fired) == 2
    store.commit(evaluation, [(CHAT, "two alerts", "alert")], NOW)
    store.rules.add(CHAT, parse_rule("rut below 1900 for 7d"), RUT_JAN_18, NOW)

    # A crash before the checkpoint: every decision survives; only judged values may trail.
    crashed = AlertStore(open_database(db_path))
    decisions = [c for c in store.rules.active.columns if c not in ("last_value", "last_session")]
    pd.testing.assert_frame_equal(crashed.rules.active[decisions], store.rules.active[decisions])
    again = evaluate(
        crashed.rules.active,
        {
            "^GSPC": close_of("^GSPC", 4780.94, JAN_18),
            "^RUT": Observation("^RUT", 2001.0, NOW, JAN_18, False),
        },
        NOW,
    )
    assert len(again.fired) == 0  # judging the same values again fires nothing
    crashed.db.close()

    store.rules.checkpoint()
    restarted = AlertStore(open_database(db_path))
    pd.testing.assert_frame_equal(restarted.rules.active, store.rules.active)
    assert restarted.rules.groups(CHAT) == store.rules.groups(CHAT)
    assert restarted.rules.groups(OTHER) == store.rules.groups(OTHER)
    restarted.db.close()


# --- commit: states and outbox in one transaction ----------------------------------------------------


def test_commit_writes_new_states_and_queues_messages(store: AlertStore, db: sqlite_utils.Database) -> None:
    """After commit the fired rule is disarmed with its value and time on disk and the message is pending."""
    group_id, _ = store.rules.add(
        CHAT, parse_rule("rut above 1920 close"), close_of("^RUT", RUT_JAN_17, JAN_17), NOW
    )
    evaluation = evaluate(store.rules.active, {"^RUT": close_of("^RUT", RUT_JAN_18, JAN_18)}, NOW)

    store.commit(evaluation, [(CHAT, "RUT rose to 1,923.65", "alert")], NOW)

    row = db.execute(
        "SELECT armed, last_value, last_session, last_fired_at FROM rules WHERE rule_id = ?", [group_id]
    ).fetchone()
    assert row == (0, RUT_JAN_18, (JAN_18 - date(1970, 1, 1)).days, NOW.isoformat())
    (queued,) = outbox_rows(db)
    assert (queued["chat_id"], queued["text"], queued["kind"], queued["status"], queued["attempts"]) == (
        CHAT,
        "RUT rose to 1,923.65",
        "alert",
        "pending",
        0,
    )
    assert not store.rules.active.loc[group_id, "armed"]


def test_commit_is_all_or_nothing_when_the_outbox_insert_fails(
    store: AlertStore, db: sqlite_utils.Database, db_path: Path
) -> None:
    """A failing outbox insert rolls back the rule states too (on disk and in memory): no silent fire."""
    store.rules.add(CHAT, parse_rule("rut above 1920 close"), close_of("^RUT", RUT_JAN_17, JAN_17), NOW)
    store.rules.add(OTHER, parse_rule("rut cross 1900"), close_of("^RUT", RUT_JAN_17, JAN_17), NOW)
    disk_before, frame_before = rule_rows_on_disk(db_path), store.rules.active.copy()
    evaluation = evaluate(store.rules.active, {"^RUT": close_of("^RUT", RUT_JAN_18, JAN_18)}, NOW)
    assert len(evaluation.fired) == 1 and len(evaluation.state) == 3
    # The fault a real disk could produce mid-transaction, made by SQLite itself.
    db.execute(
        "CREATE TRIGGER outbox_fault BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk I/O error (test)'); END"
    )

    with pytest.raises(sqlite3.DatabaseError, match="disk I/O error"):
        store.commit(evaluation, [(CHAT, "alert text", "alert")], NOW)

    assert rule_rows_on_disk(db_path) == disk_before
    assert outbox_rows(db) == []
    pd.testing.assert_frame_equal(store.rules.active, frame_before)
    assert not db.conn.in_transaction

    # The same evaluation commits once the fault is gone: nothing was half-applied.
    db.execute("DROP TRIGGER outbox_fault")
    store.commit(evaluation, [(CHAT, "alert text", "alert")], NOW)
    assert len(outbox_rows(db)) == 1
    assert rule_rows_on_disk(db_path) != disk_before


def test_done_and_expired_rows_stay_inactive_in_memory_until_the_checkpoint_compacts_them(
    store: AlertStore, db: sqlite_utils.Database, db_path: Path
) -> None:
    """A `once` rule that fired is DONE and an expired rule EXPIRED: on disk at once; in memory they stay
    in the evaluated frame, never judged again and shown nowhere as active, until the checkpoint drops them."""
    once, _ = store.rules.add(
        CHAT, parse_rule("rut above 1920 close once"), close_of("^RUT", RUT_JAN_17, JAN_17), NOW
    )
    short, _ = store.rules.add(CHAT, parse_rule("spx above 9000 for 1d"), 4739.21, NOW - timedelta(days=2))
    kept, _ = store.rules.add(CHAT, parse_rule("rut above 3000"), RUT_JAN_17, NOW)

    evaluation = evaluate(store.rules.frame, {"^RUT": close_of("^RUT", RUT_JAN_18, JAN_18)}, NOW)
    assert evaluation.fired["rule_id"].tolist() == [once]
    store.commit(evaluation, [(CHAT, "once", "alert")], NOW)

    statuses = dict(db.execute("SELECT rule_id, status FROM rules").fetchall())
    assert statuses == {once: "done", short: "expired", kept: "active"}
    assert store.rules.frame.index.tolist() == [once, short, kept]
    assert store.rules.frame["status"].tolist() == [DONE, EXPIRED, ACTIVE]
    assert store.rules.active.index.tolist() == [kept]
    assert store.rules.watched_keys() == {"^RUT"}  # nothing active judges ^GSPC any more
    assert [g.number for g in store.rules.groups(CHAT)] == [kept]
    assert store.rules.count_groups(CHAT) == 1
    assert AlertStore(open_database(db_path)).rules.active.index.tolist() == [kept]

    # Judged again, even past the level and the expiry, the finished rows neither fire nor change.
    again = evaluate(
        store.rules.frame,
        {"^RUT": close_of("^RUT", 1950.0, JAN_19), "^GSPC": close_of("^GSPC", 9500.0, JAN_19)},
        NOW + timedelta(days=1),
    )
    assert again.fired.empty
    assert again.state.index.tolist() == [kept]

    store.rules.checkpoint()
    assert store.rules.frame.index.tolist() == [kept]
    pd.testing.assert_frame_equal(store.rules.frame, store.rules.active)


# --- chats --------------------------------------------------------------------------------------------


def test_deactivate_chat_pauses_its_rules_and_drops_its_pending_rows(
    store: AlertStore, db: sqlite_utils.Database
) -> None:
    """A chat that blocked the bot: inactive, rules paused, pending rows dropped; sent rows and other chats kept."""
    store.rules.add(CHAT, parse_rule("rut cross 2000"), RUT_JAN_18, NOW)
    store.rules.add(OTHER, parse_rule("rut above 2000"), RUT_JAN_18, NOW)
    for chat, text in [(CHAT, "sent before"), (CHAT, "a"), (OTHER, "b"), (CHAT, "c")]:
        store.outbox.queue(chat, text, "alert", NOW)
    store.outbox.mark_sent(outbox_rows(db)[0]["id"], NOW)  # type: ignore[arg-type]

    store.deactivate_chat(CHAT, NOW + timedelta(minutes=1))

    chat = store.chats.get(CHAT)
    assert chat is not None and not chat.active
    assert store.chats.get(OTHER).active  # type: ignore[union-attr]
    assert db.execute("SELECT chat_id, paused FROM rules ORDER BY rule_id").fetchall() == [
        (CHAT, 1),
        (CHAT, 1),
        (OTHER, 0),
    ]
    assert store.rules.active.groupby("chat_id")["paused"].all().to_dict() == {CHAT: True, OTHER: False}
    assert [(r["text"], r["status"]) for r in outbox_rows(db)] == [
        ("sent before", "sent"),
        ("a", "dropped"),
        ("b", "pending"),
        ("c", "dropped"),
    ]
    assert [r.text for r in store.outbox.pending(NOW + timedelta(minutes=1))] == ["b"]

    # Coming back (any new message) re-activates the chat; its rules stay paused until /resume.
    store.chats.register(CHAT, now=NOW + timedelta(days=1))
    assert store.chats.get(CHAT).active  # type: ignore[union-attr]
    assert store.rules.active.loc[store.rules.active["chat_id"] == CHAT, "paused"].all()


def test_zone_and_digest_settings_are_per_chat(store: AlertStore) -> None:
    """set_zone/set_digest register the chat; only active chats with a digest time get one."""
    store.chats.set_zone(CHAT, "Europe/Berlin")
    store.chats.set_digest(CHAT, "18:30", NOW)
    store.chats.set_digest(OTHER, "07:00", NOW)
    store.deactivate_chat(OTHER, NOW)

    assert store.chats.get(CHAT) is not None and store.chats.get(CHAT).zone == "Europe/Berlin"  # type: ignore[union-attr]
    assert store.chats.get(OTHER).zone == "America/New_York"  # type: ignore[union-attr]
    next_day = NOW + timedelta(days=1)
    assert [(c.chat_id, c.digest_time) for c, _ in store.chats.digests_due(next_day)] == [(CHAT, "18:30")]
    store.chats.set_digest(CHAT, None)
    assert store.chats.digests_due(next_day) == []


def test_move_chat_keeps_the_new_ids_settings_when_it_is_already_known(
    store: AlertStore, db: sqlite_utils.Database
) -> None:
    """A supergroup someone used before its old group's move was noticed: its settings stay, the old chat's
    row goes, every rule and outbox row of the old id (sent ones too) now counts for the new one; moving
    again changes nothing."""
    old, new = -4001, -1004001
    store.chats.set_zone(old, "Europe/Berlin")
    store.chats.set_zone(new, "Asia/Tokyo")
    store.rules.add(old, parse_rule("rut cross 2000"), RUT_JAN_18, NOW)
    store.rules.add(new, parse_rule("spx above 6000"), 4780.94, NOW)
    store.rules.add(OTHER, parse_rule("rut above 2000"), RUT_JAN_18, NOW)
    for chat, text in [(old, "sent before"), (old, "pending"), (OTHER, "other")]:
        store.outbox.queue(chat, text, "alert", NOW)
    store.outbox.mark_sent(outbox_rows(db)[0]["id"], NOW)  # type: ignore[arg-type]

    assert store.move_chat(old, new) == {"chats": 1, "rules": 2, "outbox": 2}

    assert store.chats.get(old) is None and store.chats.get(new).zone == "Asia/Tokyo"  # type: ignore[union-attr]
    assert [r[0] for r in db.execute("SELECT chat_id FROM rules ORDER BY rule_id").fetchall()] == [
        new,
        new,
        new,
        OTHER,
    ]
    assert store.rules.active["chat_id"].tolist() == [new, new, new, OTHER]
    assert store.rules.count_groups(new) == 2
    assert [(r["chat_id"], r["status"]) for r in outbox_rows(db)] == [
        (new, "sent"),
        (new, "pending"),
        (OTHER, "pending"),
    ]
    assert (
        store.outbox.alerts_queued_on(new, *day_bounds(JAN_19, "Asia/Tokyo")) == 2
    )  # 21:30 UTC is the 19th there
    assert store.move_chat(old, new) == {"chats": 0, "rules": 0, "outbox": 0}


def test_move_chat_is_one_transaction(store: AlertStore, db: sqlite_utils.Database) -> None:
    """A move that fails part-way (here the outbox refuses the update) leaves the chat, its rules on disk
    and in memory and its rows all under the old id: never half moved."""
    old, new = -4001, -1004001
    store.chats.set_zone(old, "Europe/Berlin")
    store.rules.add(old, parse_rule("rut above 2000"), RUT_JAN_18, NOW)
    store.outbox.queue(old, "pending", "alert", NOW)
    db.execute(
        "CREATE TRIGGER refuse_move BEFORE UPDATE OF chat_id ON outbox BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )

    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        store.move_chat(old, new)

    assert store.chats.get(old) is not None and store.chats.get(new) is None
    assert db.execute("SELECT DISTINCT chat_id FROM rules").fetchall() == [(old,)]
    assert store.rules.active["chat_id"].tolist() == [old]
    assert [r["chat_id"] for r in outbox_rows(db)] == [old]


# --- outbox -------------------------------------------------------------------------------------------


def test_outbox_pending_mark_sent_retry_later_give_up_and_backlog(
    store: AlertStore, db: sqlite_utils.Database
) -> None:
    """The outbox lifecycle: due rows in id order; sent, postponed and failed rows leave the pending list."""
    assert store.outbox.pending(NOW) == [] and store.outbox.backlog() == (0, None)
    for n in range(4):
        store.outbox.queue(CHAT if n % 2 == 0 else OTHER, f"message {n}", "alert", NOW + timedelta(seconds=n))
    ids = [r["id"] for r in outbox_rows(db)]

    assert [r.text for r in store.outbox.pending(NOW + timedelta(seconds=1))] == ["message 0", "message 1"]
    due = store.outbox.pending(NOW + timedelta(minutes=1))
    assert [r.id for r in due] == ids
    assert (due[0].chat_id, due[0].kind, due[0].attempts, due[0].created_at) == (CHAT, "alert", 0, NOW)
    assert [r.id for r in store.outbox.pending(NOW + timedelta(minutes=1), limit=2)] == ids[:2]
    assert store.outbox.backlog() == (4, NOW)

    store.outbox.mark_sent(ids[0], NOW + timedelta(minutes=1))
    store.outbox.retry_later(ids[1], NOW + timedelta(minutes=10), "Internal Server Error")
    store.outbox.retry_later(ids[2], NOW + timedelta(minutes=5), "retry after 300 s", count_attempt=False)
    store.outbox.give_up(ids[3], "Bad Request: can't parse entities " + "x" * 500)

    assert [r.id for r in store.outbox.pending(NOW + timedelta(minutes=4))] == []
    assert [r.id for r in store.outbox.pending(NOW + timedelta(minutes=5))] == [ids[2]]
    assert [(r.id, r.attempts) for r in store.outbox.pending(NOW + timedelta(minutes=10))] == [
        (ids[1], 1),
        (ids[2], 0),
    ]
    assert store.outbox.backlog() == (2, NOW + timedelta(seconds=1))
    rows = {r["id"]: r for r in outbox_rows(db)}
    assert (rows[ids[0]]["status"], rows[ids[0]]["attempts"], rows[ids[0]]["sent_at"]) == (
        "sent",
        1,
        (NOW + timedelta(minutes=1)).isoformat(),
    )
    assert (rows[ids[3]]["status"], rows[ids[3]]["attempts"]) == ("failed", 1)
    assert len(str(rows[ids[3]]["error"])) == 300  # errors are kept short


def test_pending_holds_a_chats_later_rows_behind_one_waiting_for_a_retry(store: AlertStore) -> None:
    """While a chat's earlier row waits for its retry, its later rows are not handed out (order is kept);
    other chats' rows are, and a failed or sent row no longer holds anything."""
    for chat, text in [(CHAT, "a1"), (CHAT, "a2"), (OTHER, "b1"), (CHAT, "a3")]:
        store.outbox.queue(chat, text, "alert", NOW)
    a1, a2, b1, a3 = (r.id for r in store.outbox.pending(NOW))
    store.outbox.retry_later(a1, NOW + timedelta(minutes=5), "Internal Server Error")

    assert [r.id for r in store.outbox.pending(NOW + timedelta(minutes=1))] == [b1]
    assert [r.id for r in store.outbox.pending(NOW + timedelta(minutes=5))] == [a1, a2, b1, a3]
    store.outbox.give_up(a1, "gave up")
    assert [r.id for r in store.outbox.pending(NOW + timedelta(minutes=1))] == [a2, b1, a3]


def test_pending_compares_times_with_fractional_seconds(store: AlertStore) -> None:
    """A row due half a second after a whole second is not due at that whole second (ISO text compare)."""
    store.outbox.queue(CHAT, "x", "alert", NOW)
    (row,) = store.outbox.pending(NOW)
    store.outbox.retry_later(row.id, NOW + timedelta(seconds=5, milliseconds=500), "later")
    assert store.outbox.pending(NOW + timedelta(seconds=5)) == []
    assert [r.id for r in store.outbox.pending(NOW + timedelta(seconds=5, milliseconds=500))] == [row.id]


def test_day_bounds_are_the_local_day_in_utc() -> None:
    """A chat's day runs midnight to midnight in its zone, including a 23-hour DST day."""
    assert day_bounds(JAN_18, "Europe/Berlin") == (
        datetime(2024, 1, 17, 23, 0, tzinfo=UTC),
        datetime(2024, 1, 18, 23, 0, tzinfo=UTC),
    )
    assert day_bounds(JAN_18, "Asia/Kolkata") == (
        datetime(2024, 1, 17, 18, 30, tzinfo=UTC),
        datetime(2024, 1, 18, 18, 30, tzinfo=UTC),
    )
    start, end = day_bounds(date(2024, 3, 10), "America/New_York")  # clocks go forward at 2 a.m.
    assert (start, end) == (datetime(2024, 3, 10, 5, 0, tzinfo=UTC), datetime(2024, 3, 11, 4, 0, tzinfo=UTC))
    assert end - start == timedelta(hours=23)


def test_alerts_queued_on_counts_a_chats_alerts_within_its_local_day(store: AlertStore) -> None:
    """The daily count is per chat, per kind 'alert', and by the chat's local day."""
    store.outbox.queue(CHAT, "late on the 18th in Berlin", "alert", datetime(2024, 1, 18, 22, 30, tzinfo=UTC))
    store.outbox.queue(CHAT, "already the 19th in Berlin", "alert", datetime(2024, 1, 18, 23, 30, tzinfo=UTC))
    store.outbox.queue(CHAT, "a digest is not an alert", "digest", datetime(2024, 1, 18, 12, 0, tzinfo=UTC))
    store.outbox.queue(OTHER, "another chat", "alert", datetime(2024, 1, 18, 12, 0, tzinfo=UTC))
    store.outbox.queue(CHAT, "limit notice", "limit", datetime(2024, 1, 18, 12, 0, tzinfo=UTC))

    berlin_18 = day_bounds(JAN_18, "Europe/Berlin")
    assert store.outbox.alerts_queued_on(CHAT, *berlin_18) == 1
    assert store.outbox.alerts_queued_on(CHAT, *day_bounds(JAN_19, "Europe/Berlin")) == 1
    assert (
        store.outbox.alerts_queued_on(CHAT, *day_bounds(JAN_18, "America/New_York")) == 2
    )  # both on the 18th in New York
    assert store.outbox.limit_notice_queued_on(CHAT, *berlin_18)
    assert not store.outbox.limit_notice_queued_on(OTHER, *berlin_18)


def test_a_digest_is_due_once_a_local_day_after_its_time_even_if_the_tick_is_late(store: AlertStore) -> None:
    """Due from its time on (a late or skipped tick still sends it), once per local day, never twice."""
    from datetime import timedelta

    evening = datetime(2024, 3, 8, 23, 0, tzinfo=UTC)  # 18:00 in New York
    store.chats.set_digest(CHAT, "18:30", evening)
    assert store.chats.digests_due(evening) == []
    late = evening + timedelta(minutes=47)  # the 18:30 tick was missed
    ((chat, day),) = store.chats.digests_due(late)
    assert (chat.chat_id, day) == (CHAT, date(2024, 3, 8))
    store.queue_digest(CHAT, day, "digest", late)
    assert store.chats.digests_due(late + timedelta(minutes=5)) == []
    assert len(store.chats.digests_due(late + timedelta(days=1))) == 1


def test_a_digest_time_already_past_today_starts_tomorrow(store: AlertStore) -> None:
    from datetime import timedelta

    night = datetime(2024, 3, 9, 3, 0, tzinfo=UTC)  # 22:00 in New York on 8 Mar
    store.chats.set_digest(CHAT, "18:30", night)
    assert store.chats.digests_due(night) == []
    assert len(store.chats.digests_due(night + timedelta(days=1))) == 1


# --- snoozes (/pause 3d) ------------------------------------------------------------------------------


def paused_numbers(store: AlertStore, chat_id: int) -> list[int]:
    return [g.number for g in store.rules.groups(chat_id) if g.paused]


def test_a_snooze_ends_at_its_time_resuming_only_what_it_paused(store: AlertStore) -> None:
    for level in (2000, 2100, 2200):
        store.rules.add(CHAT, parse_rule(f"rut above {level}"), RUT_JAN_18, NOW)
    store.rules.set_paused(CHAT, True, 2)

    assert store.snooze_chat(CHAT, NOW + timedelta(days=3)) == 2
    assert paused_numbers(store, CHAT) == [1, 2, 3]
    assert store.wake_snoozed(NOW + timedelta(days=3) - timedelta(seconds=1)) == []

    ((snooze, resumed),) = store.wake_snoozed(NOW + timedelta(days=3))

    assert (snooze.chat_id, snooze.numbers, resumed) == (CHAT, (1, 3), 2)
    assert paused_numbers(store, CHAT) == [2]
    assert store.chats.snooze(CHAT) is None
    ((text,),) = store.db.execute("SELECT text FROM outbox WHERE kind = 'snooze'").fetchall()
    assert "2 alerts resumed" in text


def test_a_chat_that_blocks_the_bot_loses_its_snooze(store: AlertStore) -> None:
    store.rules.add(CHAT, parse_rule("rut above 2000"), RUT_JAN_18, NOW)
    store.snooze_chat(CHAT, NOW + timedelta(hours=12))
    store.deactivate_chat(CHAT, NOW)
    assert store.wake_snoozed(NOW + timedelta(days=1)) == []
    assert paused_numbers(store, CHAT) == [1]


def test_a_snooze_moves_with_its_chat_under_the_new_numbers(store: AlertStore) -> None:
    store.rules.add(CHAT, parse_rule("rut above 2000"), RUT_JAN_18, NOW)
    store.rules.add(OTHER, parse_rule("spx above 5000"), 4780.94, NOW)  # the new id is known already
    store.snooze_chat(CHAT, NOW + timedelta(days=1))

    store.move_chat(CHAT, OTHER)

    snooze = store.chats.snooze(OTHER)
    assert snooze is not None and snooze.numbers == (2,) and snooze.until == NOW + timedelta(days=1)
    store.wake_snoozed(NOW + timedelta(days=1))
    assert paused_numbers(store, OTHER) == []


def test_pausing_an_alert_resumed_during_a_snooze_pauses_it_for_good(store: AlertStore) -> None:
    """/pause 3d, /resume 2, /pause 2: alert 2 is paused now and stays paused when the snooze ends."""
    for level in (2000, 2100):
        store.rules.add(CHAT, parse_rule(f"rut above {level}"), RUT_JAN_18, NOW)
    store.snooze_chat(CHAT, NOW + timedelta(days=3))
    store.rules.set_paused(CHAT, False, 2)
    assert paused_numbers(store, CHAT) == [1]

    assert store.release_from_snooze(CHAT, 2)

    assert paused_numbers(store, CHAT) == [1, 2]
    store.wake_snoozed(NOW + timedelta(days=3))
    assert paused_numbers(store, CHAT) == [2]


def test_a_snooze_renewed_after_its_time_was_read_is_not_ended(store: AlertStore) -> None:
    """The job lists the snoozes that are over, then a /pause 1w lands before it ends them: it wins."""
    store.rules.add(CHAT, parse_rule("rut above 2000"), RUT_JAN_18, NOW)
    store.snooze_chat(CHAT, NOW + timedelta(days=1))
    over = store.chats.snoozes_over(NOW + timedelta(days=1))
    store.snooze_chat(CHAT, NOW + timedelta(days=8))
    store.chats.snoozes_over = lambda now: over  # type: ignore[method-assign]  # the list read before

    assert store.wake_snoozed(NOW + timedelta(days=1)) == []
    assert paused_numbers(store, CHAT) == [1]
