"""The ``observations`` room: every value a refresh judged rules on, one row per key, session and kind
(live or close), kept as the record of what the alerts saw."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from alerts.store.schema import iso
from database.connection import write_lock

if TYPE_CHECKING:
    import sqlite_utils

    from alerts.observations import Observation


class Observations:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.lock = write_lock(db)

    def record(self, observations: Iterable[Observation]) -> None:
        """Keep the fresh ones (a stale value is not what the market did that session)."""
        rows = [
            {
                "key": o.key,
                "session": o.session.isoformat(),
                "time": iso(o.time),
                "value": o.value,
                "is_close": int(o.is_close),
            }
            for o in observations
            if not o.stale
        ]
        if rows:
            with self.lock, self.db.atomic():
                self.db.table("observations").upsert_all(rows, pk=("key", "session", "is_close"))
