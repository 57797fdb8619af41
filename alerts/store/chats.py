"""The ``chats`` room: who the bot talks to, each chat's time zone and digest time, the counter its alert
numbers come from, and its snooze (``/pause 3d``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from alerts.store.schema import DEFAULT_ZONE, iso
from database.connection import write_lock

if TYPE_CHECKING:
    import sqlite_utils


@dataclass(frozen=True)
class Chat:
    chat_id: int
    type: str
    zone: str
    digest_time: str | None
    active: bool


@dataclass(frozen=True)
class Snooze:
    """A chat's alerts paused for a while (``/pause 3d``): they resume by themselves at ``until``."""

    chat_id: int
    until: datetime
    numbers: tuple[int, ...]  # the alerts the snooze paused (not those paused on their own before)


def _snooze(row: tuple[int, str, str | None]) -> Snooze:
    chat_id, until, numbers = row
    return Snooze(int(chat_id), datetime.fromisoformat(until), tuple(json.loads(numbers or "[]")))


class Chats:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.lock = write_lock(db)

    def register(self, chat_id: int, chat_type: str = "private", now: datetime | None = None) -> None:
        """Remember a chat (or re-activate one that had blocked the bot and came back)."""
        now = now or datetime.now(UTC)
        with self.lock, self.db.atomic():
            existing = self.get(chat_id)
            if existing is None:
                self.db.table("chats").insert(
                    {
                        "chat_id": chat_id,
                        "type": chat_type,
                        "zone": DEFAULT_ZONE,
                        "active": 1,
                        "created_at": iso(now),
                    }
                )
            elif not existing.active:
                self.db.execute(
                    "UPDATE chats SET active = 1, deactivated_at = NULL WHERE chat_id = ?", [chat_id]
                )

    def get(self, chat_id: int) -> Chat | None:
        row = self.db.execute(
            "SELECT chat_id, type, zone, digest_time, active FROM chats WHERE chat_id = ?", [chat_id]
        ).fetchone()
        return None if row is None else Chat(row[0], row[1], row[2], row[3], bool(row[4]))

    def set_zone(self, chat_id: int, zone: str) -> None:
        with self.lock:
            self.register(chat_id)
            self.db.execute("UPDATE chats SET zone = ? WHERE chat_id = ?", [zone, chat_id])

    def set_digest(self, chat_id: int, at: str | None, now: datetime | None = None) -> None:
        """Set the chat's digest time; a time already past today starts tomorrow."""
        with self.lock:
            self.register(chat_id)
            chat = self.get(chat_id)
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

    def digest_sent(self, chat_id: int, day: date) -> None:
        """The chat's digest for its local ``day`` is queued: it is not due again that day."""
        with self.lock:
            self.db.execute(
                "UPDATE chats SET last_digest_day = ? WHERE chat_id = ?", [day.isoformat(), chat_id]
            )

    def zones(self, chat_ids: Sequence[int]) -> dict[int, str]:
        """The time zone of each of ``chat_ids`` that is known, in one query however many chats fired."""
        rows = self.db.execute(
            "SELECT chat_id, zone FROM chats WHERE chat_id IN (SELECT value FROM json_each(?))",
            [json.dumps([int(c) for c in chat_ids])],
        ).fetchall()
        return {int(chat_id): str(zone) for chat_id, zone in rows}

    def deactivate(self, chat_id: int, now: datetime) -> None:
        """The user blocked the bot: the chat is kept, marked inactive (``AlertStore.deactivate_chat`` pauses
        its rules and drops its queue in the same transaction)."""
        with self.lock:
            self.db.execute(
                "UPDATE chats SET active = 0, deactivated_at = ? WHERE chat_id = ?", [iso(now), chat_id]
            )

    def forget(self, chat_id: int) -> int:
        """The chat's row deleted (its rules and messages are their rooms' to delete); returns 1 or 0."""
        with self.lock:
            return int(self.db.execute("DELETE FROM chats WHERE chat_id = ?", [chat_id]).rowcount)

    def become_supergroup(self, old_chat_id: int, new_chat_id: int) -> int:
        """Telegram moved the group to a supergroup with a new id: its settings and numbers come along."""
        with self.lock:
            return int(
                self.db.execute(
                    "UPDATE chats SET chat_id = ?, type = 'supergroup' WHERE chat_id = ?",
                    [new_chat_id, old_chat_id],
                ).rowcount
            )

    def last_number(self, chat_id: int) -> int:
        """The newest alert number the chat was given (0: none yet)."""
        row = self.db.execute("SELECT alert_numbers FROM chats WHERE chat_id = ?", [chat_id]).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def next_number(self, chat_id: int) -> int:
        """The number the chat's next alert gets: one after the last it was given, whatever was deleted."""
        # Rows written around ``Rules.add`` (bench/population.py) may carry numbers the counter never saw.
        (number,) = self.db.execute(
            "SELECT MAX(COALESCE((SELECT alert_numbers FROM chats WHERE chat_id = ?), 0), "
            "COALESCE((SELECT MAX(group_id) FROM rules WHERE chat_id = ?), 0)) + 1",
            [chat_id, chat_id],
        ).fetchone()
        return int(number)

    def numbers_given(self, chat_id: int, last: int) -> None:
        """The chat has handed out alert numbers up to ``last``."""
        with self.lock:
            self.db.execute("UPDATE chats SET alert_numbers = ? WHERE chat_id = ?", [last, chat_id])

    # --- the snooze ------------------------------------------------------------------------------------

    def set_snooze(self, chat_id: int, until: datetime, numbers: Sequence[int]) -> None:
        """The chat's alerts ``numbers`` were paused until ``until`` (inside ``AlertStore.snooze_chat``)."""
        with self.lock:
            self.db.execute(
                "UPDATE chats SET snooze_until = ?, snoozed_numbers = ? WHERE chat_id = ?",
                [iso(until), json.dumps(sorted(int(n) for n in numbers)), chat_id],
            )

    def snooze(self, chat_id: int) -> Snooze | None:
        """The chat's snooze, or None when it has none."""
        row = self.db.execute(
            "SELECT chat_id, snooze_until, snoozed_numbers FROM chats WHERE chat_id = ? "
            "AND snooze_until IS NOT NULL",
            [chat_id],
        ).fetchone()
        return None if row is None else _snooze(row)

    def snoozes_over(self, now: datetime) -> list[Snooze]:
        """Every snooze whose time has come."""
        rows = self.db.execute(
            "SELECT chat_id, snooze_until, snoozed_numbers FROM chats WHERE snooze_until <= ?", [iso(now)]
        ).fetchall()
        return [_snooze(row) for row in rows]

    def end_snooze(self, chat_id: int) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE chats SET snooze_until = NULL, snoozed_numbers = NULL WHERE chat_id = ?", [chat_id]
            )

    def counts(self) -> tuple[int, int]:
        """(chats known, chats active) for the operator."""
        chats, active = self.db.execute("SELECT COUNT(*), COALESCE(SUM(active), 0) FROM chats").fetchone()
        return int(chats), int(active)
