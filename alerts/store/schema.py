"""The alerts' tables and the migrations that shape them: ``chats``, ``rules`` (with its ``sequences``:
the row-key counter and the rules version), ``observations`` and ``outbox``. Each room of the store
(``chats``, ``rules``, ``observations``, ``outbox``) reads and writes its own table; this module only
builds them, in the order a database has to go through, and holds the few facts every room shares.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from database.migrations import Migration
from market.calendar import NEW_YORK

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_ZONE = NEW_YORK.key  # where the market is, until a chat says otherwise (/tz)


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
        defaults={"active": 1, "zone": DEFAULT_ZONE},
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
    """The rules version: changed in the transaction of every write to ``rules`` (``alerts.store.rules``), so a
    snapshot of the rules stamped with it is known to match the table exactly while it is unchanged."""
    db.execute("INSERT OR IGNORE INTO sequences (name, value) VALUES ('rules_version', abs(random()))")


def _m005_snooze(db: sqlite_utils.Database) -> None:
    """A chat's snooze (``/pause 3d``): when its alerts resume by themselves, and which of them the snooze
    paused (a JSON list of alert numbers), so alerts paused on their own stay paused when it ends. Kept in
    the chat's row, so a restart keeps the snooze and the next refresh after that time ends it."""
    columns = db.table("chats").columns_dict
    if "snooze_until" not in columns:
        db.table("chats").add_column("snooze_until", str)
    if "snoozed_numbers" not in columns:
        db.table("chats").add_column("snoozed_numbers", str)
    db.table("chats").create_index(["snooze_until"], if_not_exists=True)


MIGRATIONS: list[Migration] = [
    ("alerts-001-tables", _m001_alerts),
    ("alerts-002-digest-day", _m002_digest_day),
    ("alerts-003-alert-numbers", _m003_alert_numbers),
    ("alerts-004-rules-version", _m004_rules_version),
    ("alerts-005-snooze", _m005_snooze),
]

# A new random value rather than a count: a database restored from a backup, or rebuilt, can never carry
# by chance the version of a snapshot left beside the file it replaced.
BUMP_RULES_VERSION = "UPDATE sequences SET value = abs(random()) WHERE name = 'rules_version'"


def iso(moment: datetime | None) -> str | None:
    """How every room stores a moment: ISO 8601 in UTC (NULL for None)."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def real(value: float) -> float | None:
    """How every room stores a float: NaN (unknown) as NULL."""
    return None if value != value else float(value)
