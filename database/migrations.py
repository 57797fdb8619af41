"""Ordered migrations: each layer lists the steps that shape its tables, and ``migrate`` applies the ones a
database has not had yet, each in its own transaction, recording them in the ``migrations`` table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlite_utils

Migration = tuple[str, Callable[[sqlite_utils.Database], None]]


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
