"""database/wal.py: commits never checkpoint the write-ahead log; the database's own thread does, and stops
with the database."""

from __future__ import annotations

from pathlib import Path

from database.connection import open_database
from database.wal import CHECKPOINT_PAGES

# Waiting for the thread's checkpoint, not timing it: a generous bound for a loaded machine.
WAIT_SECONDS = 120


def wal_pages(path: Path, page_size: int) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size // page_size if wal.exists() else 0


def test_a_large_commit_leaves_the_log_to_the_checkpoint_thread_which_copies_it_back(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = open_database(path)
    try:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        checkpointer = db.checkpointer
        assert checkpointer is not None and checkpointer.running
        db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
        with db.atomic():  # about 1.5 times the threshold in one transaction
            db.conn.executemany(
                "INSERT INTO blobs (data) VALUES (?)",
                [(bytes(page_size),) for _ in range(CHECKPOINT_PAGES * 3 // 2)],
            )
        # The commit returned without copying anything back: the log holds it all, the file almost none.
        assert wal_pages(path, page_size) > CHECKPOINT_PAGES
        assert path.stat().st_size < CHECKPOINT_PAGES * page_size
        assert checkpointer.checkpointed.wait(WAIT_SECONDS)
        assert checkpointer.checkpoints >= 1
        # The thread copied the pages into the database file itself.
        assert path.stat().st_size >= CHECKPOINT_PAGES * 3 // 2 * page_size
    finally:
        db.close()
    assert not checkpointer.running
    # The last connection closed checkpointed the rest and removed the log, as SQLite does.
    assert not Path(f"{path}-wal").exists()
    reopened = open_database(path)
    try:
        assert reopened.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == CHECKPOINT_PAGES * 3 // 2
    finally:
        reopened.close()


def test_a_database_in_memory_has_no_checkpoint_thread() -> None:
    db = open_database(":memory:")
    try:
        assert db.checkpointer is None
    finally:
        db.close()
