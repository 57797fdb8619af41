"""The ``rules`` room: the chats' alert rules, in SQLite and in memory.

The rules live in memory as columns (``alerts.rule_table.RuleTable``, a rules frame of
``alerts.evaluate.RULE_COLUMNS``) mirrored in the ``rules`` table. Every write to that table also changes
the rules version (a row of ``sequences``) in the same transaction; a checkpoint leaves a snapshot of the
columns beside the database stamped with it, which the next start loads instead of the table when the
version still matches.

A refresh's decisions reach the table through ``decisions`` → ``write`` → ``follow``: what to write is
worked out first, written inside the caller's transaction (``AlertStore.commit`` puts the outbox rows in the
same one), and memory follows once that transaction is over, so a failed write leaves memory as the disk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

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
from alerts.store.schema import BUMP_RULES_VERSION, iso, real
from database.connection import reading, write_lock

if TYPE_CHECKING:
    import sqlite_utils

    from alerts.observations import Observation
    from alerts.rules import RuleSpec
    from alerts.store.chats import Chats

log = logging.getLogger(__name__)

MAX_GROUPS_PER_CHAT = 50
LOAD_CHUNK = 100_000  # rule rows converted at a time when the rules load
SNAPSHOT_SUFFIX = "-rules.npz"  # the rules snapshot beside the database, like its -wal and -shm


class QuotaExceeded(Exception):
    """A chat already has the most rules it may have."""


class DuplicateRule(Exception):
    """The chat already has this very rule (the same canonical text), active: ``number`` and ``spec`` say
    which."""

    def __init__(self, number: int, spec: str) -> None:
        super().__init__(f"#{number}: {spec}")
        self.number = number
        self.spec = spec


@dataclass(frozen=True)
class ChatAlert:
    """One of a chat's active alerts as the chat knows it: a cross (two rule rows) is one."""

    number: int  # the chat's own number for it: what /alerts shows and /delete takes
    rule_id: int  # its first row's key: never reused, so it names this very alert (a delete button has it)
    spec: str  # the canonical text
    armed: tuple[bool, ...]  # per row
    paused: bool
    last_value: float | None  # the last value judged, None before the first
    last_fired_at: str | None  # ISO 8601 UTC
    expires_at: str | None  # ISO 8601 UTC
    key: str
    level: float | None


@dataclass(frozen=True)
class Decisions:
    """What a refresh's evaluation changed, ready to write (``Rules.write``) and to follow in memory
    (``Rules.follow``)."""

    updates: list[tuple[Any, ...]]  # the rows whose decision changed, as the UPDATE's parameters
    judged: int  # how many rows judged a new value
    judged_at: np.ndarray | None  # their table positions; None: ``judged_values`` are whole columns
    judged_values: dict[str, np.ndarray]  # their last_value and last_session
    decided: np.ndarray  # table positions whose decision changed
    decided_values: dict[str, np.ndarray]  # their STATE_COLUMNS


class Rules:
    def __init__(self, db: sqlite_utils.Database, chats: Chats) -> None:
        self.db = db
        self.lock = write_lock(db)  # held by a whole refresh (alerts.engine.run_refresh)
        self._chats = chats
        # The version the snapshot file matches (None: it is missing or stale, the next checkpoint writes it).
        self._snapshot_version: int | None = None
        self._table = self._load_table()
        # Rows whose last judged value moved since the last checkpoint (see ``decisions``).
        self.unsaved_progress = False

    @property
    def active(self) -> pd.DataFrame:
        """The active rules as a rules frame (finished rows left out). Read it; do not keep it: the room
        writes judged state into it in place."""
        return self._table.active()

    @property
    def frame(self) -> pd.DataFrame:
        """What a refresh evaluates: every rule row held, the finished ones too until the next checkpoint
        (evaluation judges only ACTIVE rows, so they never fire again). ``follow`` writes back into it."""
        return self._table.frame

    @property
    def table(self) -> RuleTable:
        return self._table

    def watched_keys(self) -> set[str]:
        """The observation keys some active rule judges."""
        return self._table.watched_keys()

    # --- loading ---------------------------------------------------------------------------------------

    def _load_table(self) -> RuleTable:
        """The active rules: from the snapshot when it matches the rules version, else from the table."""
        version, rows = self.version(), self._active_rows()
        path = self.snapshot_path()
        if path is not None:
            table = read_snapshot(path, version, rows)
            if table is not None:
                self._snapshot_version = version
                return table
        return self._read_rules(rows)

    def _read_rules(self, rows: int) -> RuleTable:
        """The active rules read from the table a chunk of rows at a time, converted column by column
        into the table's arrays: a million rules never exist as a million Python dicts at once."""
        table = RuleTable.empty(rows)
        columns = ", ".join(["rule_id", *RULE_COLUMNS])
        with reading(self.db) as conn:
            chunks = pd.read_sql_query(
                f"SELECT {columns} FROM rules WHERE status = 'active' ORDER BY rule_id",
                conn,
                chunksize=LOAD_CHUNK,
            )
            for chunk in chunks:
                part = _rules_columns(chunk)
                table.append_columns(part.pop("rule_id"), part, part.pop("key"))
        if table.size > LOAD_CHUNK:
            _release_free_memory()
        return table

    def version(self) -> int:
        """The rules version now (changed by every write to the table)."""
        row = self.db.execute("SELECT value FROM sequences WHERE name = 'rules_version'").fetchone()
        return int(row[0])

    def _active_rows(self) -> int:
        (count,) = self.db.execute("SELECT COUNT(*) FROM rules WHERE status = 'active'").fetchone()
        return int(count)

    def snapshot_path(self) -> Path | None:
        """Where the rules snapshot lives: beside the database file (None for a database in memory)."""
        for _, name, file in self.db.execute("PRAGMA database_list").fetchall():
            if name == "main":
                return Path(f"{file}{SNAPSHOT_SUFFIX}") if file else None
        return None

    # --- a chat's alerts -------------------------------------------------------------------------------

    def count_groups(self, chat_id: int) -> int:
        row = self.db.execute(
            "SELECT COUNT(DISTINCT group_id) FROM rules WHERE chat_id = ? AND status = 'active'", [chat_id]
        ).fetchone()
        return int(row[0])

    def add(
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
        with self.lock:
            if self.count_groups(chat_id) >= MAX_GROUPS_PER_CHAT:
                raise QuotaExceeded(f"a chat can keep at most {MAX_GROUPS_PER_CHAT} alerts")
            same = self.db.execute(
                "SELECT group_id FROM rules WHERE chat_id = ? AND status = 'active' AND spec = ? LIMIT 1",
                [chat_id, spec.canonical],
            ).fetchone()
            if same is not None:
                raise DuplicateRule(int(same[0]), spec.canonical)
            with self.db.atomic():
                self._chats.register(chat_id, now=now)
                number = self._chats.next_number(chat_id)
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
                records = [_record(row, spec, now) for row in rows]
                self.db.table("rules").insert_all(records, pk="rule_id")
                self.db.execute(
                    "UPDATE sequences SET value = ? WHERE name = 'rule_id'", [first_id + len(rows) - 1]
                )
                self._chats.numbers_given(chat_id, number)
                self.db.execute(BUMP_RULES_VERSION)
            # Into the table's spare room: no copy of the other rules (the frame is rebuilt when next read).
            self._table.append(rules_frame(rows))
            return number, start

    def _next_rule_id(self) -> int:
        (rule_id,) = self.db.execute(
            "SELECT MAX(COALESCE((SELECT value FROM sequences WHERE name = 'rule_id'), 0), "
            "COALESCE((SELECT MAX(rule_id) FROM rules), 0)) + 1"
        ).fetchone()
        return int(rule_id)

    def finished(self, chat_id: int, number: int) -> str | None:
        """How the chat's alert ``number`` ended when it is kept but no longer active: "done" (a once alert
        that fired) or "expired"; None otherwise."""
        row = self.db.execute(
            "SELECT status FROM rules WHERE chat_id = ? AND group_id = ? AND status != 'active' LIMIT 1",
            [chat_id, number],
        ).fetchone()
        return None if row is None else str(row[0])

    def groups(self, chat_id: int) -> list[ChatAlert]:
        """The chat's active alerts, oldest first (a cross is one)."""
        rows = self.db.execute(
            "SELECT group_id, (SELECT MIN(g.rule_id) FROM rules AS g WHERE g.chat_id = rules.chat_id "
            "AND g.group_id = rules.group_id), spec, armed, paused, last_value, last_fired_at, expires_at, "
            "key, level FROM rules WHERE chat_id = ? AND status = 'active' ORDER BY group_id, rule_id",
            [chat_id],
        ).fetchall()
        found: dict[int, dict[str, Any]] = {}
        for group_id, rule_id, spec, armed, paused, last_value, last_fired_at, expires_at, key, level in rows:
            entry = found.setdefault(
                group_id,
                {
                    "number": group_id,
                    "rule_id": rule_id,
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
        # The last judged value on disk may trail memory by up to a checkpoint (see ``decisions``).
        table = self._table
        mine = (table.column("chat_id") == chat_id) & (table.column("status") == ACTIVE)
        for group_id, value in zip(
            table.column("group_id")[mine].tolist(), table.column("last_value")[mine].tolist(), strict=True
        ):
            if int(group_id) in found and value == value:  # NaN: nothing judged yet
                found[int(group_id)]["last_value"] = float(value)
        return [ChatAlert(**{**entry, "armed": tuple(entry["armed"])}) for entry in found.values()]

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
        with self.lock, self.db.atomic():
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

    def unpaused_numbers(self, chat_id: int) -> list[int]:
        """The numbers of the chat's active alerts that are not paused."""
        rows = self.db.execute(
            "SELECT DISTINCT group_id FROM rules WHERE chat_id = ? AND status = 'active' AND paused = 0 "
            "ORDER BY group_id",
            [chat_id],
        ).fetchall()
        return [int(n) for (n,) in rows]

    def set_paused(self, chat_id: int, paused: bool, group_id: int | None = None) -> int:
        """Pause or resume the chat's rules (one group, or all); returns how many groups changed."""
        with self.lock, self.db.atomic():
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

    # --- a whole chat (``AlertStore`` runs these inside its transaction) ---------------------------------

    def pause_chat(self, chat_id: int) -> None:
        """Every rule of the chat paused, active or not (the chat blocked the bot)."""
        with self.lock:
            self.db.execute("UPDATE rules SET paused = 1 WHERE chat_id = ?", [chat_id])
            self.db.execute(BUMP_RULES_VERSION)
            self._set_paused_in_memory(chat_id, None, True)

    def forget_chat(self, chat_id: int) -> int:
        """Every rule of the chat deleted, finished ones too; returns the rows deleted. Memory follows at
        once: call it inside a transaction only where a failure ends the process (``AlertStore``)."""
        with self.lock:
            deleted = self.db.execute("DELETE FROM rules WHERE chat_id = ?", [chat_id]).rowcount
            if deleted:
                self.db.execute(BUMP_RULES_VERSION)
                self._table.keep(self._table.column("chat_id") != chat_id)
            return int(deleted)

    def chat_numbers(self, chat_id: int) -> list[int]:
        """The chat's alert numbers, active or finished, in the order they were set."""
        return [
            int(n)
            for (n,) in self.db.execute(
                "SELECT group_id FROM rules WHERE chat_id = ? GROUP BY group_id ORDER BY MIN(rule_id)",
                [chat_id],
            ).fetchall()
        ]

    def move_on_disk(self, old_chat_id: int, new_chat_id: int, renumbered: dict[int, int]) -> int:
        """The chat's rules under ``new_chat_id``, numbers changed as ``renumbered`` says; returns the rows
        moved. Memory follows with ``move_in_memory`` once the caller's transaction is committed."""
        with self.lock:
            moved = 0
            for old, number in renumbered.items():
                moved += self.db.execute(
                    "UPDATE rules SET chat_id = ?, group_id = ? WHERE chat_id = ? AND group_id = ?",
                    [new_chat_id, number, old_chat_id, old],
                ).rowcount
            moved += self.db.execute(
                "UPDATE rules SET chat_id = ? WHERE chat_id = ?", [new_chat_id, old_chat_id]
            ).rowcount
            if moved:
                self.db.execute(BUMP_RULES_VERSION)
            return int(moved)

    def move_in_memory(self, old_chat_id: int, new_chat_id: int, renumbered: dict[int, int]) -> None:
        table = self._table
        moved = table.column("chat_id") == old_chat_id
        if moved.any():
            if renumbered:
                groups = table.column("group_id")
                groups[moved] = [renumbered.get(int(g), int(g)) for g in groups[moved].tolist()]
            table.column("chat_id")[moved] = new_chat_id
            table.changed_status(keys=False)

    def counts(self) -> tuple[int, int, int]:
        """(active alerts, paused ones, chats with any) for the operator; a cross counts once."""
        groups, paused, chats = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(paused), 0), COUNT(DISTINCT chat_id) FROM "
            "(SELECT chat_id, group_id, MAX(paused) AS paused FROM rules WHERE status = 'active' "
            "GROUP BY chat_id, group_id)"
        ).fetchone()
        return int(groups), int(paused), int(chats)

    # --- a refresh's decisions -------------------------------------------------------------------------

    def decisions(self, evaluation: Evaluation, now: datetime) -> Decisions:
        """What ``evaluation`` changed, as rows to write and positions to follow in memory.

        A row is written when its status, armed state, reference or last alert changed: what decides whether
        and when it fires. A row that only judged a new value (``last_value``/``last_session``) — on a live
        refresh, every rule judged, up to a million — changes in memory only and reaches disk at the next
        ``checkpoint``. Losing that in a crash is harmless: judging the same value again decides the same
        (an alert already sent disarmed its rule, and that was written), so nothing fires twice and nothing
        is missed.

        The rows are where the evaluation found them (``Evaluation.positions``) when it judged this room's
        ``frame`` as it is held now, else they are looked up by rule id.
        """
        fired = evaluation.fired["rule_id"].to_numpy() if len(evaluation.fired) else np.empty(0, np.int64)
        table = self._table
        judged_at: np.ndarray | None
        if self._judged_here(evaluation):
            # A refresh: the rows are where the evaluation found them, and it says which it decided. The
            # judged values go back as whole columns (the evaluation's are the table's, changed or not):
            # one copy of each rather than a gather and a scatter of two thirds of a million rows.
            new, changed = evaluation.new, evaluation.positions
            decided = changed[evaluation.decided]
            ids = evaluation.ids[decided]
            values = {column: new[column][decided] for column in STATE_COLUMNS}
            judged, judged_at = len(changed), None
            judged_values = {column: new[column] for column in ("last_value", "last_session")}
            decided_values = values
        else:  # judged on another frame: found by rule id, and what changed told against this table
            state = evaluation.state
            found = table.positions(state.index.to_numpy())
            held = found >= 0
            changed = self._decided(state, found) | ~held | state.index.isin(fired)
            ids = state.index.to_numpy()[changed]
            values = {column: state[column].to_numpy()[changed] for column in STATE_COLUMNS}
            judged_at = found[held]
            judged = len(judged_at)
            judged_values = {c: state[c].to_numpy()[held] for c in ("last_value", "last_session")}
            decided = found[changed & held]
            decided_values = {column: state[column].to_numpy()[changed & held] for column in STATE_COLUMNS}
        stamp = iso(now)
        updates = list(
            zip(
                [STATUS_NAMES[code] for code in values["status"].tolist()],
                values["armed"].astype(int).tolist(),
                [real(v) for v in values["reference"].tolist()],
                [real(v) for v in values["last_value"].tolist()],
                values["last_fired_session"].tolist(),
                values["last_session"].tolist(),
                [stamp if hit else None for hit in np.isin(ids, fired).tolist()],
                ids.tolist(),
                strict=True,
            )
        )
        return Decisions(updates, judged, judged_at, judged_values, decided, decided_values)

    def write(self, decisions: Decisions) -> None:
        """The changed decisions on disk, inside the caller's transaction."""
        if decisions.updates:
            with self.lock:
                self.db.conn.executemany(
                    "UPDATE rules SET status = ?, armed = ?, reference = ?, last_value = ?, "
                    "last_fired_session = ?, last_session = ?, "
                    "last_fired_at = COALESCE(?, last_fired_at) WHERE rule_id = ?",
                    decisions.updates,
                )
                self.db.execute(BUMP_RULES_VERSION)

    def follow(self, decisions: Decisions) -> None:
        """Memory follows the disk: every changed row judged a value; only the decided ones (few) changed
        anything else. A rule that finished (done, expired) stays, inactive, until the next checkpoint."""
        table = self._table
        if decisions.judged > len(decisions.decided):
            self.unsaved_progress = True
        for column, judged_column in decisions.judged_values.items():
            if decisions.judged_at is None:
                table.column(column)[:] = judged_column
            else:
                table.column(column)[decisions.judged_at] = judged_column
        for column in ("status", "armed", "reference", "last_fired_session"):
            table.column(column)[decisions.decided] = decisions.decided_values[column]
        finished = int(np.count_nonzero(decisions.decided_values["status"] != ACTIVE))
        table.finished += finished
        table.changed_status(keys=finished > 0)

    def _judged_here(self, evaluation: Evaluation) -> bool:
        """Whether ``evaluation`` judged this table's rows as they are held now (as a refresh does, under
        the lock): then its positions are the table's."""
        return len(evaluation.ids) == self._table.size and np.array_equal(evaluation.ids, self._table.ids)

    def _decided(self, state: pd.DataFrame, positions: Any) -> Any:
        """Which rows of ``state`` changed a decision column against the table (an evaluation that does not
        say so itself)."""
        table = self._table
        at = np.where(positions >= 0, positions, 0)
        same = np.ones(len(state), dtype=bool)
        for column in ("status", "armed", "last_fired_session"):
            same &= state[column].to_numpy() == table.column(column)[at]
        new_ref, old_ref = state["reference"].to_numpy(), table.column("reference")[at]
        same &= (new_ref == old_ref) | (np.isnan(new_ref) & np.isnan(old_ref))
        return ~same

    # --- checkpoint ------------------------------------------------------------------------------------

    def checkpoint(self) -> int:
        """Write every active rule's last judged value and session, drop the finished rules from memory,
        and leave a snapshot of the rules beside the database; returns the rows written.

        Called after the close and at shutdown: bulk work off the refresh's hot path. The snapshot is
        written after the transaction, stamped with the rules version it made: a crash between the two
        leaves the old snapshot, whose version no longer matches, and the next start reads the table.
        """
        with self.lock:
            table = self._table
            table.compact()
            written = 0
            if self.unsaved_progress:
                rows = list(
                    zip(
                        [real(v) for v in table.column("last_value").tolist()],
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
        version, path = self.version(), self.snapshot_path()
        if path is None or version == self._snapshot_version:
            return
        try:
            self._table.write_snapshot(path, version)
        except OSError:  # a full disk: the next start reads the table, slower but the same
            log.warning("the rules snapshot could not be written to %s", path, exc_info=True)
            return
        self._snapshot_version = version


def _record(row: dict[str, Any], spec: RuleSpec, now: datetime) -> dict[str, Any]:
    record = dict(row)
    record["kind"] = KIND_NAMES[row["kind"]] if isinstance(row["kind"], int) else row["kind"]
    record["mode"] = MODE_NAMES[row["mode"]] if isinstance(row["mode"], int) else row["mode"]
    record["status"] = STATUS_NAMES[row["status"]] if isinstance(row["status"], int) else row["status"]
    record["expires_at"] = iso(row["expires_at"])
    record["spec"] = spec.canonical
    record["created_at"] = iso(now)
    return record


def _rules_columns(chunk: pd.DataFrame) -> dict[str, Any]:
    """One chunk of ``rules`` rows as arrays of the ``RULE_COLUMNS`` dtypes (``key`` a chunk categorical)."""
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
