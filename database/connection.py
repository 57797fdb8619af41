"""The connection to the SQLite file capgap keeps everything in: opened private, in WAL mode, with the one
write lock its writers share and transactions that wait for the write lock instead of failing."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Generator
from pathlib import Path

import sqlite_utils

from database.wal import Checkpointer, checkpoint_in_background

# How long a statement waits for another connection's write lock (`capgap backup`, a second reader
# checkpointing, a writer in another thread) before it gives up with "database is locked".
BUSY_TIMEOUT_SECONDS = 10.0
PAGE_CACHE_KIB = 32 * 1024
# The database holds chat ids, alert rules and queued messages: readable by its owner only.
PRIVATE_MODE = 0o600


def private_file(path: Path | str) -> None:
    """Make sure ``path`` exists and only its owner may read or write it (0600).

    Created here, before SQLite opens it, because SQLite creates a file with the process umask (0644 as
    a rule) and gives its -wal and -shm files the database file's own permissions. A file left readable
    by others (an older capgap made it) loses those bits.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_MODE))
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)


class Database(sqlite_utils.Database):
    """sqlite-utils' Database whose transactions take the write lock when they begin.

    sqlite-utils' ``atomic()`` begins with a plain (deferred) ``BEGIN``: its first read takes a read
    snapshot, and its first write must then upgrade it. If another connection wrote in between, or holds
    the write lock, SQLite cannot wait for the upgrade (the snapshot would be stale) and fails at once with
    "database is locked", whatever the busy timeout. ``BEGIN IMMEDIATE`` takes the write lock first, so a
    busy database is waited for, up to ``BUSY_TIMEOUT_SECONDS``.
    """

    checkpointer: Checkpointer | None = None  # a file's (``database.wal``); none for a database in memory

    @contextlib.contextmanager
    def atomic(self) -> Generator[sqlite_utils.Database, None, None]:
        if self.conn.in_transaction:  # nested: sqlite-utils' savepoint inside the outer transaction
            with super().atomic() as db:
                yield db
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.conn.rollback()  # a no-op if the error already ended the transaction
            raise
        else:
            self.conn.commit()

    def close(self) -> None:
        """Stop the background checkpoints first: the last connection to close checkpoints the rest."""
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is not None:
            checkpointer.stop()
        self.conn.close()


def connect(
    path: Path | str,
    *,
    timeout: float = BUSY_TIMEOUT_SECONDS,
    uri: bool = False,
    check_same_thread: bool = True,
    autocommit: bool = False,
) -> sqlite3.Connection:
    """``sqlite3.connect`` with capgap's busy timeout; ``autocommit`` leaves transactions to the caller."""
    if autocommit:
        return sqlite3.connect(
            path, timeout=timeout, uri=uri, check_same_thread=check_same_thread, isolation_level=None
        )
    return sqlite3.connect(path, timeout=timeout, uri=uri, check_same_thread=check_same_thread)


def open_database(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the database in WAL mode, shareable with worker threads.

    Callers serialise writes themselves; WAL lets readers carry on while a write is in flight, and the
    busy timeout covers a second process such as ``capgap backup``. Commits never checkpoint the log: a
    thread of the database's own does (``database.wal``). The file (and so its -wal and -shm)
    is private to its owner.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        private_file(path)
        for suffix in ("-wal", "-shm"):  # left by an earlier run with other permissions
            sidecar = Path(f"{path}{suffix}")
            if sidecar.exists():
                private_file(sidecar)
    conn = connect(str(path), check_same_thread=False, autocommit=True)
    db = Database(conn)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    # 32 MB of page cache rather than SQLite's 2 MB: a refresh that fires thousands of alerts changes
    # thousands of pages of the rules table in one transaction, and with the small cache spills and
    # re-reads them before its commit.
    conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
    if str(path) != ":memory:":
        db.enable_wal()
        db.checkpointer = checkpoint_in_background(
            conn, path, lambda: connect(path, check_same_thread=True, autocommit=True), db
        )
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
