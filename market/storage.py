"""The SQLite file capgap keeps everything in, and the ordered migrations that shape it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

Migration = tuple[str, Callable[[sqlite_utils.Database], None]]


def open_database(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the database in WAL mode, shareable with worker threads.

    Callers serialise writes themselves; WAL lets readers carry on while a write is in flight, and the
    busy timeout covers a second process such as ``capgap backup``.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0, isolation_level=None)
    db = sqlite_utils.Database(conn)
    if str(path) != ":memory:":
        db.enable_wal()
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    db._capgap_write_lock = threading.RLock()  # type: ignore[attr-defined]
    return db


def write_lock(db: sqlite_utils.Database) -> threading.RLock:
    """The one lock every writer of this connection holds around its transaction.

    Transactions belong to the connection, not the thread: two writers in different threads, each with
    a lock of its own, would nest one's statements inside the other's transaction (sqlite-utils' atomic()
    then takes a savepoint of a transaction it does not own). One lock per connection keeps them apart.
    """
    lock = getattr(db, "_capgap_write_lock", None)
    if lock is None:
        lock = threading.RLock()
        db._capgap_write_lock = lock  # type: ignore[attr-defined]
    return lock


def migrate(db: sqlite_utils.Database, steps: Sequence[Migration]) -> list[str]:
    """Apply the steps not yet recorded, in order, each in its own transaction. Safe to re-run."""
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM migrations").fetchall()}
    applied = []
    for name, step in steps:
        if name in done:
            continue
        with db.atomic():
            step(db)
            db.conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
        applied.append(name)
    return applied
