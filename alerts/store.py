"""Chats, alert rules, observations and the outbox, in SQLite (sqlite-utils, WAL).

The rules live in memory as columns (``alerts.rule_table.RuleTable``, a rules frame of
``alerts.evaluate.RULE_COLUMNS``) mirrored in the ``rules`` table. Every write to that table also changes
the rules version (a row of ``sequences``) in the same transaction; a checkpoint leaves a snapshot of the
columns beside the database stamped with it, which the next start loads instead of the table when the
version still matches.
An evaluation's new rule states and the outbox rows it produced are written in ONE transaction, so after a
crash either both are on disk or neither is: a restart re-sends what is pending and never re-fires what
was already queued.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from alerts.evaluate import (
    ACTIVE,
    KIND_NAMES,
    MODE_NAMES,
    RULE_COLUMNS,
    STATE_COLUMNS,
    STATUS_NAMES,
    Evaluation,
    InitialState,
    rule_rows,
    rules_frame,
)
from alerts.rule_table import RuleTable, read_snapshot
from alerts.rules import RuleSpec
from database.connection import write_lock
from database.migrations import Migration, migrate

if TYPE_CHECKING:
    import pandas as pd
    import sqlite_utils

    from alerts.observations import Observation

log = logging.getLogger(__name__)

MAX_GROUPS_PER_CHAT = 50
DEFAULT_ZONE = "America/New_York"  # where the market is, until a chat says otherwise (/tz)


class QuotaExceeded(Exception):
    """A chat already has the most rules it may have."""


class DuplicateRule(Exception):
    """The chat already has this very rule (the same canonical text), active: ``number`` and ``spec`` say
    which."""

    def __init__(self, number: int, spec: str) -> None:
        super().__init__(f"#{number}: {spec}")
        self.number = number
        self.spec = spec


def _m001_alerts(db: sqlite_utils.Database) -> None:
    db.table("chats").create(
        {
            "chat_id": int,
            "type": str,
            "zone": str,
            "digest_time": str,
            "active": int,
            "created_at": str,
            "deactivated_at": str,
        },
        pk="chat_id",
        not_null={"active"},
        defaults={"active": 1, "zone": "America/New_York"},
        if_not_exists=True,
    )
    db.table("rules").create(
        {
            "rule_id": int,
            "chat_id": int,
            "group_id": int,
            "spec": str,
            "key": str,
            "kind": str,
            "level": float,
            "band": float,
            "mode": str,
            "once": int,
            "expires_at": str,
            "paused": int,
            "status": str,
            "armed": int,
            "reference": float,
            "last_value": float,
            "last_fired_session": int,
            "last_session": int,
            "created_at": str,
            "last_fired_at": str,
        },
        pk="rule_id",
        if_not_exists=True,
    )
    db.table("rules").create_index(["chat_id"], if_not_exists=True)
    db.table("rules").create_index(["status"], if_not_exists=True)
    db.table("observations").create(
        {"key": str, "session": str, "time": str, "value": float, "is_close": int},
        pk=("key", "session", "is_close"),
        if_not_exists=True,
    )
    db.table("outbox").create(
        {
            "id": int,
            "chat_id": int,
            "text": str,
            "kind": str,
            "created_at": str,
            "due_at": str,
            "attempts": int,
            "status": str,
            "sent_at": str,
            "error": str,
        },
        pk="id",
        not_null={"chat_id", "text", "status"},
        defaults={"attempts": 0, "status": "pending", "kind": "alert"},
        if_not_exists=True,
    )
    db.table("outbox").create_index(["status", "due_at"], if_not_exists=True)
    db.table("outbox").create_index(["chat_id", "created_at"], if_not_exists=True)


def _m002_digest_day(db: sqlite_utils.Database) -> None:
    # The local day each chat's digest last went out: a digest is due once its time has passed that day,
    # so a late tick or a DST jump neither skips nor repeats it.
    if "last_digest_day" not in db.table("chats").columns_dict:
        db.table("chats").add_column("last_digest_day", str)


def _m003_alert_numbers(db: sqlite_utils.Database) -> None:
    """Alert numbers become each chat's own and are never handed out twice; the stored row key
    (``rule_id``) is never reused either.

    Until now a rule's number was its first ``rule_id``, ``MAX(rule_id) + 1`` at creation: shared by all
    chats, and the number of a deleted newest rule went to the next one, so an old delete button hit a newer
    alert. Existing alerts keep the numbers their chats were told (old pushes say "/delete 37", and 37 must
    still mean that alert); every existing chat's counter starts after the largest number given out so far,
    so none of those numbers comes back. New chats count from #1. Runs once, in one transaction (``migrate``).
    """
    if "alert_numbers" not in db.table("chats").columns_dict:
        # The last number this chat handed out: the next alert gets the one after, whatever was deleted.
        db.table("chats").add_column("alert_numbers", int, not_null_default=0)
    db.execute("CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.execute(
        "INSERT OR IGNORE INTO sequences (name, value) SELECT 'rule_id', COALESCE(MAX(rule_id), 0) FROM rules"
    )
    db.execute(
        "UPDATE chats SET alert_numbers = (SELECT COALESCE(MAX(MAX(rule_id), MAX(group_id)), 0) FROM rules)"
    )
    db.table("rules").create_index(["chat_id", "group_id"], if_not_exists=True)


def _m004_rules_version(db: sqlite_utils.Database) -> None:
    """The rules version: changed in the transaction of every write to ``rules`` (``AlertStore``), so a
    snapshot of the rules stamped with it is known to match the table exactly while it is unchanged."""
    db.execute("INSERT OR IGNORE INTO sequences (name, value) VALUES ('rules_version', abs(random()))")


MIGRATIONS: list[Migration] = [
    ("alerts-001-tables", _m001_alerts),
    ("alerts-002-digest-day", _m002_digest_day),
    ("alerts-003-alert-numbers", _m003_alert_numbers),
    ("alerts-004-rules-version", _m004_rules_version),
]

# A new random value rather than a count: a database restored from a backup, or rebuilt, can never carry
# by chance the version of a snapshot left beside the file it replaced.
BUMP_RULES_VERSION = "UPDATE sequences SET value = abs(random()) WHERE name = 'rules_version'"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class OutboxRow:
    id: int
    chat_id: int
    text: str
    kind: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Chat:
    chat_id: int
    type: str
    zone: str
    digest_time: str | None
    active: bool


class AlertStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._write = write_lock(db)
        migrate(db, MIGRATIONS)
        # The version the snapshot file matches (None: it is missing or stale, the next checkpoint writes it).
        self._snapshot_version: int | None = None
        self._table = self._load_table()
        self.lock = self._write  # held by a whole refresh (alerts.engine.run_refresh)
        # Rows whose last judged value moved since the last checkpoint (see ``commit``).
        self.unsaved_progress = False

    @property
    def rules(self) -> pd.DataFrame:
        """The active rules as a rules frame (finished rows left out). Read it; do not keep it: the store
        writes judged state into it in place."""
        return self._table.active()

    @property
    def frame(self) -> pd.DataFrame:
        """What a refresh evaluates: every rule row held, the finished ones too until the next checkpoint
        (evaluation judges only ACTIVE rows, so they never fire again). ``commit`` writes back into it."""
        return self._table.frame

    def watched_keys(self) -> set[str]:
        """The observation keys some active rule judges."""
        return self._table.watched_keys()

    # --- chats -----------------------------------------------------------------------------------------

    def register_chat(self, chat_id: int, chat_type: str = "private", now: datetime | None = None) -> None:
        """Remember a chat (or re-activate one that had blocked the bot and came back)."""
        now = now or datetime.now(UTC)
        with self._write, self.db.atomic():
            existing = self.chat(chat_id)
            if existing is None:
                self.db.table("chats").insert(
                    {
                        "chat_id": chat_id,
                        "type": chat_type,
                        "zone": "America/New_York",
                        "active": 1,
                        "created_at": _iso(now),
                    }
                )
            elif not existing.active:
                self.db.execute(
                    "UPDATE chats SET active = 1, deactivated_at = NULL WHERE chat_id = ?", [chat_id]
                )

    def chat(self, chat_id: int) -> Chat | None:
        row = self.db.execute(
            "SELECT chat_id, type, zone, digest_time, active FROM chats WHERE chat_id = ?", [chat_id]
        ).fetchone()
        return None if row is None else Chat(row[0], row[1], row[2], row[3], bool(row[4]))

    def set_zone(self, chat_id: int, zone: str) -> None:
        with self._write:
            self.register_chat(chat_id)
            self.db.execute("UPDATE chats SET zone = ? WHERE chat_id = ?", [zone, chat_id])

    def set_digest(self, chat_id: int, at: str | None, now: datetime | None = None) -> None:
        """Set the chat's digest time; a time already past today starts tomorrow."""
        with self._write:
            self.register_chat(chat_id)
            chat = self.chat(chat_id)
            local = (now or datetime.now(UTC)).astimezone(ZoneInfo(chat.zone if chat else DEFAULT_ZONE))
            sent = local.date().isoformat() if at is not None and local.strftime("%H:%M") >= at else None
            self.db.execute(
                "UPDATE chats SET digest_time = ?, last_digest_day = ? WHERE chat_id = ?", [at, sent, chat_id]
            )

    def digests_due(self, now: datetime) -> list[tuple[Chat, date]]:
        """Chats whose digest time has passed today (their local day) and that have not had it today."""
        rows = self.db.execute(
            "SELECT chat_id, type, zone, digest_time, active, last_digest_day FROM chats "
            "WHERE digest_time IS NOT NULL AND active = 1"
        ).fetchall()
        due = []
        for chat_id, kind, zone, at, active, last_day in rows:
            local = now.astimezone(ZoneInfo(zone))
            if local.strftime("%H:%M") >= at and last_day != local.date().isoformat():
                due.append((Chat(chat_id, kind, zone, at, bool(active)), local.date()))
        return due

    def queue_digest(self, chat_id: int, day: date, text: str, now: datetime) -> None:
        """Queue a chat's digest and mark its day as done, together."""
        with self._write, self.db.atomic():
            self.queue(chat_id, text, "digest", now)
            self.db.execute(
                "UPDATE chats SET last_digest_day = ? WHERE chat_id = ?", [day.isoformat(), chat_id]
            )

    def deactivate_chat(self, chat_id: int, now: datetime) -> None:
        """The user blocked the bot: stop sending, pause the chat's rules, drop what is queued for it."""
        with self._write, self.db.atomic():
            self.db.execute(
                "UPDATE chats SET active = 0, deactivated_at = ? WHERE chat_id = ?", [_iso(now), chat_id]
            )
            self.db.execute("UPDATE rules SET paused = 1 WHERE chat_id = ?", [chat_id])
            self.db.execute(BUMP_RULES_VERSION)
            self.db.execute(
                "UPDATE outbox SET status = 'dropped', error = 'chat blocked the bot' "
                "WHERE chat_id = ? AND status = 'pending'",
                [chat_id],
            )
            self._set_paused_in_memory(chat_id, None, True)

    # --- rules -----------------------------------------------------------------------------------------

    def _load_table(self) -> RuleTable:
        """The active rules: from the snapshot when it matches the rules version, else from the table."""
        version, rows = self._rules_version(), self._active_rows()
        path = self._snapshot_path()
        if path is not None:
            table = read_snapshot(path, version, rows)
            if table is not None:
                self._snapshot_version = version
                return table
        return self._read_rules(rows)

    def _read_rules(self, rows: int) -> RuleTable:
        """The active rules read from the table a chunk of rows at a time, converted column by column
        into the table's arrays: a million rules never exist as a million Python dicts at once."""
        import pandas as pd

        table = RuleTable.empty(rows)
        columns = ", ".join(["rule_id", *RULE_COLUMNS])
        chunks = pd.read_sql_query(
            f"SELECT {columns} FROM rules WHERE status = 'active' ORDER BY rule_id",
            self.db.conn,
            chunksize=LOAD_CHUNK,
        )
        for chunk in chunks:
            part = _rules_columns(chunk)
            table.append_columns(part.pop("rule_id"), part, part.pop("key"))
        if table.size > LOAD_CHUNK:
            _release_free_memory()
        return table

    def _rules_version(self) -> int:
        row = self.db.execute("SELECT value FROM sequences WHERE name = 'rules_version'").fetchone()
        return int(row[0])

    def _active_rows(self) -> int:
        (count,) = self.db.execute("SELECT COUNT(*) FROM rules WHERE status = 'active'").fetchone()
        return int(count)

    def _snapshot_path(self) -> Path | None:
        """Where the rules snapshot lives: beside the database file (None for a database in memory)."""
        for _, name, file in self.db.execute("PRAGMA database_list").fetchall():
            if name == "main":
                return Path(f"{file}{SNAPSHOT_SUFFIX}") if file else None
        return None

    def count_groups(self, chat_id: int) -> int:
        row = self.db.execute(
            "SELECT COUNT(DISTINCT group_id) FROM rules WHERE chat_id = ? AND status = 'active'", [chat_id]
        ).fetchone()
        return int(row[0])

    def add_rule(
        self,
        chat_id: int,
        spec: RuleSpec,
        current: Observation | float | None,
        now: datetime,
        *,
        all_time_high: float | None = None,
    ) -> tuple[int, InitialState]:
        """Store ``spec`` for ``chat_id``; returns its number (the chat's own, what /alerts shows and /delete
        takes) and its initial state.

        The number is the one after the last this chat was given, so it is never handed out twice in the
        chat, whatever was deleted; a cross is one number. QuotaExceeded past ``MAX_GROUPS_PER_CHAT``;
        DuplicateRule when the chat already has the same rule, active. Either way nothing is stored.
        """
        with self._write:
            if self.count_groups(chat_id) >= MAX_GROUPS_PER_CHAT:
                raise QuotaExceeded(f"a chat can keep at most {MAX_GROUPS_PER_CHAT} alerts")
            same = self.db.execute(
                "SELECT group_id FROM rules WHERE chat_id = ? AND status = 'active' AND spec = ? LIMIT 1",
                [chat_id, spec.canonical],
            ).fetchone()
            if same is not None:
                raise DuplicateRule(int(same[0]), spec.canonical)
            with self.db.atomic():
                self.register_chat(chat_id, now=now)
                number = self._next_number(chat_id)
                first_id = self._next_rule_id()
                rows, start = rule_rows(
                    spec,
                    current,
                    first_rule_id=first_id,
                    chat_id=chat_id,
                    created_at=now,
                    all_time_high=all_time_high,
                )
                for row in rows:
                    row["group_id"] = number
                records = [self._record(row, spec, now) for row in rows]
                self.db.table("rules").insert_all(records, pk="rule_id")
                self.db.execute(
                    "UPDATE sequences SET value = ? WHERE name = 'rule_id'", [first_id + len(rows) - 1]
                )
                self.db.execute("UPDATE chats SET alert_numbers = ? WHERE chat_id = ?", [number, chat_id])
                self.db.execute(BUMP_RULES_VERSION)
            # Into the table's spare room: no copy of the other rules (the frame is rebuilt when next read).
            self._table.append(rules_frame(rows))
            return number, start

    def _next_number(self, chat_id: int) -> int:
        # Rows written around add_rule (bench/population.py) may carry numbers the counter never saw.
        (number,) = self.db.execute(
            "SELECT MAX(COALESCE((SELECT alert_numbers FROM chats WHERE chat_id = ?), 0), "
            "COALESCE((SELECT MAX(group_id) FROM rules WHERE chat_id = ?), 0)) + 1",
            [chat_id, chat_id],
        ).fetchone()
        return int(number)

    def _next_rule_id(self) -> int:
        (rule_id,) = self.db.execute(
            "SELECT MAX(COALESCE((SELECT value FROM sequences WHERE name = 'rule_id'), 0), "
            "COALESCE((SELECT MAX(rule_id) FROM rules), 0)) + 1"
        ).fetchone()
        return int(rule_id)

    def last_number(self, chat_id: int) -> int:
        """The newest alert number the chat was given (0: none yet)."""
        row = self.db.execute("SELECT alert_numbers FROM chats WHERE chat_id = ?", [chat_id]).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def finished(self, chat_id: int, number: int) -> str | None:
        """How the chat's alert ``number`` ended when it is kept but no longer active: "done" (a once alert
        that fired) or "expired"; None otherwise."""
        row = self.db.execute(
            "SELECT status FROM rules WHERE chat_id = ? AND group_id = ? AND status != 'active' LIMIT 1",
            [chat_id, number],
        ).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _record(row: dict[str, Any], spec: RuleSpec, now: datetime) -> dict[str, Any]:
        record = {k: v for k, v in row.items()}
        record["kind"] = KIND_NAMES[row["kind"]] if isinstance(row["kind"], int) else row["kind"]
        record["mode"] = MODE_NAMES[row["mode"]] if isinstance(row["mode"], int) else row["mode"]
        record["status"] = STATUS_NAMES[row["status"]] if isinstance(row["status"], int) else row["status"]
        record["expires_at"] = _iso(row["expires_at"])
        record["spec"] = spec.canonical
        record["created_at"] = _iso(now)
        return record

    def groups(self, chat_id: int) -> list[dict[str, Any]]:
        """The chat's active rules, one entry per group (a cross is one), oldest first: ``id`` is the
        chat's number for it, ``rule_id`` its first row's key."""
        rows = self.db.execute(
            "SELECT group_id, (SELECT MIN(g.rule_id) FROM rules AS g WHERE g.chat_id = rules.chat_id "
            "AND g.group_id = rules.group_id), spec, armed, paused, last_value, last_fired_at, expires_at, "
            "key, level FROM rules WHERE chat_id = ? AND status = 'active' ORDER BY group_id, rule_id",
            [chat_id],
        ).fetchall()
        groups: dict[int, dict[str, Any]] = {}
        for group_id, rule_id, spec, armed, paused, last_value, last_fired_at, expires_at, key, level in rows:
            entry = groups.setdefault(
                group_id,
                {
                    "id": group_id,
                    "rule_id": rule_id,  # the group's first row: never reused, so it names this very alert
                    "spec": spec,
                    "armed": [],
                    "paused": bool(paused),
                    "last_value": last_value,
                    "last_fired_at": last_fired_at,
                    "expires_at": expires_at,
                    "key": key,
                    "level": level,
                },
            )
            entry["armed"].append(bool(armed))
            if last_fired_at and (entry["last_fired_at"] or "") < last_fired_at:
                entry["last_fired_at"] = last_fired_at
        # The last judged value on disk may trail memory by up to a checkpoint (see ``commit``).
        table = self._table
        mine = (table.column("chat_id") == chat_id) & (table.column("status") == ACTIVE)
        for group_id, value in zip(
            table.column("group_id")[mine].tolist(), table.column("last_value")[mine].tolist(), strict=True
        ):
            if int(group_id) in groups and value == value:  # NaN: nothing judged yet
                groups[int(group_id)]["last_value"] = float(value)
        return list(groups.values())

    def specs(self, rule_ids: Iterable[int]) -> dict[int, str]:
        """The canonical text of each rule row's rule."""
        ids = list(rule_ids)
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
            chunk = ids[start : start + 500]
            sql = f"SELECT rule_id, spec FROM rules WHERE rule_id IN ({','.join('?' * len(chunk))})"
            found.update(self.db.execute(sql, chunk).fetchall())
        return found

    def delete_group(self, chat_id: int, group_id: int, rule_id: int | None = None) -> str | None:
        """Delete the chat's active alert number ``group_id``; returns its canonical text, or None when
        the chat has no such active alert. Another chat's number deletes nothing: every change is scoped.

        With ``rule_id`` (what a delete button carries), only the alert whose first row is ``rule_id`` is
        deleted: a number can come back after /forget, a row key never does."""
        with self._write, self.db.atomic():
            # The group's first row, whatever its status: half of a once cross may be done already.
            first, spec, active = self.db.execute(
                "SELECT MIN(rule_id), MIN(spec), SUM(status = 'active') FROM rules "
                "WHERE chat_id = ? AND group_id = ?",
                [chat_id, group_id],
            ).fetchone()
            if not active or (rule_id is not None and int(first) != rule_id):
                return None
            self.db.execute(
                "DELETE FROM rules WHERE chat_id = ? AND group_id = ? AND status = 'active'",
                [chat_id, group_id],
            )
            self.db.execute(BUMP_RULES_VERSION)
            table = self._table
            # Its finished rows, if any are still held, go too: on disk they stay, as a finished alert.
            table.keep(~((table.column("chat_id") == chat_id) & (table.column("group_id") == group_id)))
            return str(spec)

    def set_paused(self, chat_id: int, paused: bool, group_id: int | None = None) -> int:
        """Pause or resume the chat's rules (one group, or all); returns how many groups changed."""
        with self._write, self.db.atomic():
            sql = "UPDATE rules SET paused = ? WHERE chat_id = ? AND status = 'active' AND paused != ?"
            params: list[Any] = [int(paused), chat_id, int(paused)]
            if group_id is not None:
                sql += " AND group_id = ?"
                params.append(group_id)
            changed = self.db.execute(
                "SELECT COUNT(DISTINCT group_id) FROM rules WHERE chat_id = ? AND status = 'active' AND paused != ?"
                + (" AND group_id = ?" if group_id is not None else ""),
                [chat_id, int(paused)] + ([group_id] if group_id is not None else []),
            ).fetchone()[0]
            self.db.execute(sql, params)
            self.db.execute(BUMP_RULES_VERSION)
            self._set_paused_in_memory(chat_id, group_id, paused)
            return int(changed)

    def _set_paused_in_memory(self, chat_id: int, group_id: int | None, paused: bool) -> None:
        table = self._table
        mask = table.column("chat_id") == chat_id
        if group_id is not None:
            mask &= table.column("group_id") == group_id
        table.column("paused")[mask] = paused
        table.changed_status(keys=False)

    # --- evaluation results ----------------------------------------------------------------------------

    def record_observations(self, observations: Iterable[Observation]) -> None:
        rows = [
            {
                "key": o.key,
                "session": o.session.isoformat(),
                "time": _iso(o.time),
                "value": o.value,
                "is_close": int(o.is_close),
            }
            for o in observations
            if not o.stale
        ]
        if rows:
            with self._write, self.db.atomic():
                self.db.table("observations").upsert_all(rows, pk=("key", "session", "is_close"))

    def commit(self, evaluation: Evaluation, messages: Sequence[tuple[int, str, str]], now: datetime) -> None:
        """Write the changed rule decisions and queue ``messages`` (chat_id, text, kind) in one transaction.

        A row is written when its status, armed state, reference or last alert changed: what decides whether
        and when it fires. A row that only judged a new value (``last_value``/``last_session``) — on a live
        refresh, every rule judged, up to a million — changes in memory only and reaches disk at the next
        ``checkpoint``. Losing that in a crash is harmless: judging the same value again decides the same
        (an alert already sent disarmed its rule, and that was written), so nothing fires twice and nothing
        is missed.

        Memory follows the disk once the transaction is over: the new state is written into the rows where
        the evaluation found them (``Evaluation.positions``) when it judged this store's ``frame``, else
        looked up by rule id. A rule that finished (done, expired) stays there, inactive, until the next
        checkpoint compacts it away.
        """
        import numpy as np

        fired = evaluation.fired["rule_id"].to_numpy() if len(evaluation.fired) else np.empty(0, np.int64)
        stamp = _iso(now)
        outbox = [(chat_id, text, kind, stamp, stamp) for chat_id, text, kind in messages]
        with self._write:
            table = self._table
            if self._judged_here(evaluation):
                # A refresh: the rows are where the evaluation found them, and it says which it decided.
                new, judged = evaluation.new, evaluation.positions
                decided = judged[evaluation.decided]
                ids = evaluation.ids[decided]
                values = {column: new[column][decided] for column in STATE_COLUMNS}
                judged_values = {column: new[column][judged] for column in ("last_value", "last_session")}
                decided_values = values
            else:  # judged on another frame: found by rule id, and what changed told against this table
                state = evaluation.state
                found = table.positions(state.index.to_numpy())
                held = found >= 0
                changed = self._decided(state, found) | ~held | state.index.isin(fired)
                ids = state.index.to_numpy()[changed]
                values = {column: state[column].to_numpy()[changed] for column in STATE_COLUMNS}
                judged = found[held]
                judged_values = {c: state[c].to_numpy()[held] for c in ("last_value", "last_session")}
                decided = found[changed & held]
                decided_values = {
                    column: state[column].to_numpy()[changed & held] for column in STATE_COLUMNS
                }
            updates = list(
                zip(
                    [STATUS_NAMES[code] for code in values["status"].tolist()],
                    values["armed"].astype(int).tolist(),
                    [_real(v) for v in values["reference"].tolist()],
                    [_real(v) for v in values["last_value"].tolist()],
                    values["last_fired_session"].tolist(),
                    values["last_session"].tolist(),
                    [stamp if hit else None for hit in np.isin(ids, fired).tolist()],
                    ids.tolist(),
                    strict=True,
                )
            )
            with self.db.atomic():
                if updates:
                    self.db.conn.executemany(
                        "UPDATE rules SET status = ?, armed = ?, reference = ?, last_value = ?, "
                        "last_fired_session = ?, last_session = ?, "
                        "last_fired_at = COALESCE(?, last_fired_at) WHERE rule_id = ?",
                        updates,
                    )
                    self.db.execute(BUMP_RULES_VERSION)
                if outbox:
                    self.db.conn.executemany(
                        "INSERT INTO outbox (chat_id, text, kind, created_at, due_at, attempts, status) "
                        "VALUES (?, ?, ?, ?, ?, 0, 'pending')",
                        outbox,
                    )
            # Memory follows the disk. Every changed row judged a value; only the decided ones (few)
            # changed anything else.
            if len(judged) > len(decided):
                self.unsaved_progress = True
            for column, judged_column in judged_values.items():
                table.column(column)[judged] = judged_column
            for column in ("status", "armed", "reference", "last_fired_session"):
                table.column(column)[decided] = decided_values[column]
            finished = int(np.count_nonzero(decided_values["status"] != ACTIVE))
            table.finished += finished
            table.changed_status(keys=finished > 0)

    def _judged_here(self, evaluation: Evaluation) -> bool:
        """Whether ``evaluation`` judged this table's rows as they are held now (as a refresh does, under
        the lock): then its positions are the table's."""
        import numpy as np

        return len(evaluation.ids) == self._table.size and np.array_equal(evaluation.ids, self._table.ids)

    def _decided(self, state: pd.DataFrame, positions: Any) -> Any:
        """Which rows of ``state`` changed a decision column against the table (an evaluation that does not
        say so itself)."""
        import numpy as np

        table = self._table
        at = np.where(positions >= 0, positions, 0)
        same = np.ones(len(state), dtype=bool)
        for column in ("status", "armed", "last_fired_session"):
            same &= state[column].to_numpy() == table.column(column)[at]
        new_ref, old_ref = state["reference"].to_numpy(), table.column("reference")[at]
        same &= (new_ref == old_ref) | (np.isnan(new_ref) & np.isnan(old_ref))
        return ~same

    def checkpoint(self) -> int:
        """Write every active rule's last judged value and session, drop the finished rules from memory,
        and leave a snapshot of the rules beside the database; returns the rows written.

        Called after the close and at shutdown: bulk work off the refresh's hot path. The snapshot is
        written after the transaction, stamped with the rules version it made: a crash between the two
        leaves the old snapshot, whose version no longer matches, and the next start reads the table.
        """
        with self._write:
            table = self._table
            table.compact()
            written = 0
            if self.unsaved_progress:
                rows = list(
                    zip(
                        [_real(v) for v in table.column("last_value").tolist()],
                        table.column("last_session").tolist(),
                        table.ids.tolist(),
                        strict=True,
                    )
                )
                with self.db.atomic():
                    self.db.conn.executemany(
                        "UPDATE rules SET last_value = ?, last_session = ? WHERE rule_id = ?", rows
                    )
                    self.db.execute(BUMP_RULES_VERSION)
                self.unsaved_progress = False
                written = len(rows)
            self._write_snapshot()
            return written

    def _write_snapshot(self) -> None:
        """The snapshot for the rules version now, unless the file already has it."""
        version, path = self._rules_version(), self._snapshot_path()
        if path is None or version == self._snapshot_version:
            return
        try:
            self._table.write_snapshot(path, version)
        except OSError:  # a full disk: the next start reads the table, slower but the same
            log.warning("the rules snapshot could not be written to %s", path, exc_info=True)
            return
        self._snapshot_version = version

    def queue(self, chat_id: int, text: str, kind: str, now: datetime) -> None:
        with self._write, self.db.atomic():
            self.db.table("outbox").insert(
                {
                    "chat_id": chat_id,
                    "text": text,
                    "kind": kind,
                    "created_at": _iso(now),
                    "due_at": _iso(now),
                    "attempts": 0,
                    "status": "pending",
                }
            )

    # --- outbox ----------------------------------------------------------------------------------------

    def pending(self, now: datetime, limit: int = 1000) -> list[OutboxRow]:
        """Due rows in id order, except those queued behind a row of their chat that is waiting for a
        retry: a chat receives its messages in the order they were queued."""
        # "+e.status" keeps SQLite on the chat_id index for the inner lookup (a chat has few rows; the
        # status index would scan every postponed row for every due one).
        rows = self.db.execute(
            "SELECT id, chat_id, text, kind, attempts, created_at FROM outbox AS o "
            "WHERE status = 'pending' AND due_at <= ? AND NOT EXISTS ("
            "SELECT 1 FROM outbox AS e WHERE e.chat_id = o.chat_id AND +e.status = 'pending' "
            "AND e.id < o.id AND e.due_at > ?) ORDER BY id LIMIT ?",
            [_iso(now), _iso(now), limit],
        ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5])) for r in rows]

    def backlog(self) -> tuple[int, datetime | None]:
        count, oldest = self.db.execute(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return int(count), None if oldest is None else datetime.fromisoformat(oldest)

    def mark_sent(self, row_id: int, now: datetime) -> None:
        with self._write:
            self.db.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                [_iso(now), row_id],
            )

    def retry_later(self, row_id: int, due: datetime, error: str, count_attempt: bool = True) -> None:
        with self._write:
            self.db.execute(
                "UPDATE outbox SET due_at = ?, error = ?, attempts = attempts + ? WHERE id = ?",
                [_iso(due), error[:300], int(count_attempt), row_id],
            )

    def give_up(self, row_id: int, error: str) -> None:
        with self._write:
            self.db.execute(
                "UPDATE outbox SET status = 'failed', error = ?, attempts = attempts + 1 WHERE id = ?",
                [error[:300], row_id],
            )

    def alerts_queued_on(self, chat_id: int, day_start: datetime, day_end: datetime) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM outbox WHERE chat_id = ? AND kind = 'alert' AND created_at >= ? AND created_at < ?",
            [chat_id, _iso(day_start), _iso(day_end)],
        ).fetchone()
        return int(row[0])

    def zones(self, chat_ids: Sequence[int]) -> dict[int, str]:
        """The time zone of each of ``chat_ids`` that is known, in one query however many chats fired."""
        import json

        rows = self.db.execute(
            "SELECT chat_id, zone FROM chats WHERE chat_id IN (SELECT value FROM json_each(?))",
            [json.dumps([int(c) for c in chat_ids])],
        ).fetchall()
        return {int(chat_id): str(zone) for chat_id, zone in rows}

    def alerts_queued_between(
        self, chat_ids: Sequence[int], day_start: datetime, day_end: datetime
    ) -> dict[int, int]:
        """``alerts_queued_on`` for many chats at once: chats with none queued are left out."""
        import json

        rows = self.db.execute(
            "SELECT chat_id, COUNT(*) FROM outbox WHERE chat_id IN (SELECT value FROM json_each(?)) "
            "AND kind = 'alert' AND created_at >= ? AND created_at < ? GROUP BY chat_id",
            [json.dumps([int(c) for c in chat_ids]), _iso(day_start), _iso(day_end)],
        ).fetchall()
        return {int(chat_id): int(count) for chat_id, count in rows}

    def limit_notice_queued_on(self, chat_id: int, day_start: datetime, day_end: datetime) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM outbox WHERE chat_id = ? AND kind = 'limit' AND created_at >= ? AND created_at < ?",
            [chat_id, _iso(day_start), _iso(day_end)],
        ).fetchone()
        return row is not None

    # --- operations: /forget, /stats, /healthz ------------------------------------------------------------

    def forget_chat(self, chat_id: int) -> dict[str, int]:
        """Delete everything stored about ``chat_id``: its rules, its outbox rows, the chat itself.

        Observations and gap snapshots belong to the market, not to a chat, and stay. Returns the number
        of rows deleted from each table.
        """
        with self._write, self.db.atomic():
            rules = self.db.execute("DELETE FROM rules WHERE chat_id = ?", [chat_id]).rowcount
            outbox = self.db.execute("DELETE FROM outbox WHERE chat_id = ?", [chat_id]).rowcount
            chats = self.db.execute("DELETE FROM chats WHERE chat_id = ?", [chat_id]).rowcount
            if rules:
                self.db.execute(BUMP_RULES_VERSION)
                self._table.keep(self._table.column("chat_id") != chat_id)
        return {"rules": rules, "outbox": outbox, "chats": chats}

    def usage(self, day_start: datetime, day_end: datetime) -> dict[str, int]:
        """Counts for the operator: chats, active rules (a cross counts once) and alerts sent in the day."""
        chats, active_chats = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(active), 0) FROM chats"
        ).fetchone()
        groups, paused, chats_with_rules = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(paused), 0), COUNT(DISTINCT chat_id) FROM "
            "(SELECT chat_id, group_id, MAX(paused) AS paused FROM rules WHERE status = 'active' "
            "GROUP BY chat_id, group_id)"
        ).fetchone()
        (sent,) = self.db.execute(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'alert' AND status = 'sent' AND sent_at >= ? AND sent_at < ?",
            [_iso(day_start), _iso(day_end)],
        ).fetchone()
        return {
            "chats": int(chats),
            "active_chats": int(active_chats),
            "rules": int(groups),
            "paused_rules": int(paused),
            "chats_with_rules": int(chats_with_rules),
            "alerts_sent": int(sent),
        }

    def last_delivery_error(self) -> tuple[str, str] | None:
        """The newest outbox row that met an error: (error, its status now: pending, sent, failed, dropped)."""
        row = self.db.execute(
            "SELECT error, status FROM outbox WHERE error IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def move_chat(self, old_chat_id: int, new_chat_id: int) -> dict[str, int]:
        """The chat has a new id (Telegram upgraded a group to a supergroup): its settings, rules and outbox
        rows follow it, in one transaction, so nothing queued is lost and nothing is left under the old id.

        Every outbox row moves, sent ones too: the daily alert limit and /forget count them by chat id.
        When the new id is already known (someone used the supergroup first), its settings are kept and
        the old chat's row goes. Calling again finds nothing under the old id and changes nothing: both
        the service message and a refused send may report the same move. Returns the rows moved per table.
        """
        if old_chat_id == new_chat_id:
            return {"chats": 0, "rules": 0, "outbox": 0}
        renumbered: dict[int, int] = {}
        with self._write:
            with self.db.atomic():
                rules = 0
                if self.chat(new_chat_id) is None:
                    # Telegram only ever moves a group to a supergroup. Its numbers come along unchanged.
                    chats = self.db.execute(
                        "UPDATE chats SET chat_id = ?, type = 'supergroup' WHERE chat_id = ?",
                        [new_chat_id, old_chat_id],
                    ).rowcount
                else:
                    # The new id has numbers of its own: the old chat's alerts take the next ones, in the
                    # order they were set, so no number in the new chat means two alerts.
                    old_numbers = [
                        int(n)
                        for (n,) in self.db.execute(
                            "SELECT group_id FROM rules WHERE chat_id = ? GROUP BY group_id ORDER BY MIN(rule_id)",
                            [old_chat_id],
                        ).fetchall()
                    ]
                    start = self._next_number(new_chat_id)
                    renumbered = {old: start + i for i, old in enumerate(old_numbers)}
                    for old, number in renumbered.items():
                        rules += self.db.execute(
                            "UPDATE rules SET chat_id = ?, group_id = ? WHERE chat_id = ? AND group_id = ?",
                            [new_chat_id, number, old_chat_id, old],
                        ).rowcount
                    if renumbered:
                        self.db.execute(
                            "UPDATE chats SET alert_numbers = ? WHERE chat_id = ?",
                            [start + len(renumbered) - 1, new_chat_id],
                        )
                    chats = self.db.execute("DELETE FROM chats WHERE chat_id = ?", [old_chat_id]).rowcount
                rules += self.db.execute(
                    "UPDATE rules SET chat_id = ? WHERE chat_id = ?", [new_chat_id, old_chat_id]
                ).rowcount
                outbox = self.db.execute(
                    "UPDATE outbox SET chat_id = ? WHERE chat_id = ?", [new_chat_id, old_chat_id]
                ).rowcount
                if rules:
                    self.db.execute(BUMP_RULES_VERSION)
            # After the commit: a failed transaction leaves memory as it was, matching the disk.
            table = self._table
            moved = table.column("chat_id") == old_chat_id
            if moved.any():
                if renumbered:
                    groups = table.column("group_id")
                    groups[moved] = [renumbered.get(int(g), int(g)) for g in groups[moved].tolist()]
                table.column("chat_id")[moved] = new_chat_id
                table.changed_status(keys=False)
        return {"chats": chats, "rules": rules, "outbox": outbox}


LOAD_CHUNK = 100_000  # rule rows converted at a time when the store loads
SNAPSHOT_SUFFIX = "-rules.npz"  # the rules snapshot beside the database, like its -wal and -shm


def _rules_columns(chunk: pd.DataFrame) -> dict[str, Any]:
    """One chunk of ``rules`` rows as arrays of the ``RULE_COLUMNS`` dtypes (``key`` a chunk categorical)."""
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {"rule_id": chunk["rule_id"].to_numpy(dtype=np.int64)}
    names = {"kind": KIND_NAMES, "mode": MODE_NAMES, "status": STATUS_NAMES}
    for column, dtype in RULE_COLUMNS.items():
        values = chunk[column]
        if column in names:
            codes = pd.Categorical(values, categories=list(names[column])).codes
            if (codes < 0).any():
                raise ValueError(f"unknown {column} in the rules table: {set(values[codes < 0])}")
            out[column] = codes.astype(dtype)
        elif column == "key":
            # Categorical per chunk: strings kept across chunks would pin the memory of every chunk's
            # temporaries (the allocator cannot return an arena that still holds one live object).
            out[column] = pd.Categorical(values)
        elif column == "expires_at":
            # NULL reads as None or NaN (pandas 3 reads text as ``str`` with NaN for NULL): both become NaT.
            stamps = pd.to_datetime(values, utc=True, format="ISO8601")
            out[column] = stamps.dt.tz_convert(None).to_numpy().astype("datetime64[ns]")
        elif dtype.kind == "f":
            out[column] = values.to_numpy(dtype=dtype, na_value=np.nan)  # NULL is NaN (unknown)
        else:
            out[column] = values.to_numpy(dtype=dtype)
    return out


def _release_free_memory() -> None:
    """Hand the heap memory that loading freed back to the system (glibc keeps it otherwise).

    Loading a million rules makes tens of millions of short-lived Python objects; once they are gone, glibc
    still holds about 120 MB of their pages, which ``malloc_trim`` returns. Elsewhere this does nothing."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return
    if trim is not None:
        trim(0)


def _real(value: float) -> float | None:
    return None if value != value else float(value)  # NaN is stored as NULL


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)
