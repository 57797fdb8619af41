"""The ``outbox`` room: every message the bot owes a chat (alerts, digests, limit notices), queued in the
transaction that decided it, drained to Telegram by ``alerts.delivery``, and the daily counts read from it.

A row is ``pending`` until Telegram accepted it (``sent``), refused it for good (``failed``), or its chat
blocked the bot (``dropped``). A restart re-sends what is pending and nothing else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from alerts.store.schema import iso
from database.connection import write_lock

if TYPE_CHECKING:
    import sqlite_utils

# How long an error text may be where it is kept: enough to tell what happened, never a whole HTML page.
ERROR_CHARS = 300


@dataclass(frozen=True)
class OutboxRow:
    id: int
    chat_id: int
    text: str
    kind: str
    attempts: int
    created_at: datetime


class Outbox:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.lock = write_lock(db)

    def queue(self, chat_id: int, text: str, kind: str, now: datetime) -> None:
        self.queue_many([(chat_id, text, kind)], now)

    def queue_many(self, messages: Sequence[tuple[int, str, str]], now: datetime) -> None:
        """Queue ``messages`` (chat_id, text, kind), due now, in one statement (inside the caller's
        transaction when there is one)."""
        if not messages:
            return
        stamp = iso(now)
        with self.lock, self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO outbox (chat_id, text, kind, created_at, due_at, attempts, status) "
                "VALUES (?, ?, ?, ?, ?, 0, 'pending')",
                [(chat_id, text, kind, stamp, stamp) for chat_id, text, kind in messages],
            )

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
            [iso(now), iso(now), limit],
        ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5])) for r in rows]

    def sent_alerts(self, chat_id: int, limit: int) -> list[tuple[datetime, str]]:
        """The chat's last ``limit`` alert messages Telegram accepted, newest first: (when, text).

        Sent rows are kept (the daily limit counts them; /forget deletes them), so they are the log."""
        rows = self.db.execute(
            "SELECT sent_at, text FROM outbox WHERE chat_id = ? AND kind = 'alert' AND status = 'sent' "
            "ORDER BY sent_at DESC, id DESC LIMIT ?",
            [chat_id, limit],
        ).fetchall()
        return [(datetime.fromisoformat(sent_at), str(text)) for sent_at, text in rows]

    def backlog(self) -> tuple[int, datetime | None]:
        count, oldest = self.db.execute(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return int(count), None if oldest is None else datetime.fromisoformat(oldest)

    def mark_sent(self, row_id: int, now: datetime) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                [iso(now), row_id],
            )

    def retry_later(self, row_id: int, due: datetime, error: str, count_attempt: bool = True) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE outbox SET due_at = ?, error = ?, attempts = attempts + ? WHERE id = ?",
                [iso(due), error[:ERROR_CHARS], int(count_attempt), row_id],
            )

    def give_up(self, row_id: int, error: str) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE outbox SET status = 'failed', error = ?, attempts = attempts + 1 WHERE id = ?",
                [error[:ERROR_CHARS], row_id],
            )

    def drop_pending(self, chat_id: int, reason: str) -> int:
        """Nothing pending for the chat will be sent (it blocked the bot); returns the rows dropped."""
        with self.lock:
            return self.db.execute(
                "UPDATE outbox SET status = 'dropped', error = ? WHERE chat_id = ? AND status = 'pending'",
                [reason, chat_id],
            ).rowcount

    def forget_chat(self, chat_id: int) -> int:
        """Every row of the chat deleted, sent ones too; returns how many."""
        with self.lock:
            return int(self.db.execute("DELETE FROM outbox WHERE chat_id = ?", [chat_id]).rowcount)

    def move_chat(self, old_chat_id: int, new_chat_id: int) -> int:
        """Every row of the chat, sent ones too (the daily limit counts them), under its new id."""
        with self.lock:
            return int(
                self.db.execute(
                    "UPDATE outbox SET chat_id = ? WHERE chat_id = ?", [new_chat_id, old_chat_id]
                ).rowcount
            )

    # --- the daily limit and the operator's counts ---------------------------------------------------------

    def alerts_queued_on(self, chat_id: int, day_start: datetime, day_end: datetime) -> int:
        return self.alerts_queued_between([chat_id], day_start, day_end).get(chat_id, 0)

    def alerts_queued_between(
        self, chat_ids: Sequence[int], day_start: datetime, day_end: datetime
    ) -> dict[int, int]:
        """Alerts queued for each of ``chat_ids`` in the day, in one query: chats with none are left out."""
        rows = self.db.execute(
            "SELECT chat_id, COUNT(*) FROM outbox WHERE chat_id IN (SELECT value FROM json_each(?)) "
            "AND kind = 'alert' AND created_at >= ? AND created_at < ? GROUP BY chat_id",
            [json.dumps([int(c) for c in chat_ids]), iso(day_start), iso(day_end)],
        ).fetchall()
        return {int(chat_id): int(count) for chat_id, count in rows}

    def limit_notice_queued_on(self, chat_id: int, day_start: datetime, day_end: datetime) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM outbox WHERE chat_id = ? AND kind = 'limit' AND created_at >= ? AND created_at < ?",
            [chat_id, iso(day_start), iso(day_end)],
        ).fetchone()
        return row is not None

    def alerts_sent_between(self, day_start: datetime, day_end: datetime) -> int:
        (sent,) = self.db.execute(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'alert' AND status = 'sent' AND sent_at >= ? AND sent_at < ?",
            [iso(day_start), iso(day_end)],
        ).fetchone()
        return int(sent)

    def last_error(self) -> tuple[str, str] | None:
        """The newest row that met an error: (error, its status now: pending, sent, failed, dropped)."""
        row = self.db.execute(
            "SELECT error, status FROM outbox WHERE error IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The local ``day`` in ``zone`` as a UTC interval [start, end): what "today" means for a chat's limit."""
    start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)
