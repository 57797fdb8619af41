"""The connection to the SQLite file capgap keeps everything in: opened private, in WAL mode, with the one
lock its writers share, transactions that wait for the write lock instead of failing, and reads that never
meet another thread's transaction.

One ``sqlite3.Connection`` has one transaction, whichever thread is using it. A read on the writers'
connection while another thread's transaction is open would see rows that may yet be rolled back, and a
rollback aborts it mid-way ("abort due to ROLLBACK"); a read statement still active there makes a writer's
``DROP TABLE`` fail ("database table is locked"). So a thread that does not hold the lock reads through a
reader connection lent to it for that read (``Database.execute``, ``Database.query``,
``Database.reading``): in WAL mode it sees the last commit and never waits for a writer. The lock's holder,
and every write, use the writers' connection. Every statement's rows are read in full before its
connection is let go."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

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


class ConnectionLock:
    """The writers' lock of one connection: reentrant, and it knows whether the calling thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._held = threading.local()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._lock.acquire(blocking, timeout):
            return False
        self._held.depth = getattr(self._held, "depth", 0) + 1
        return True

    def release(self) -> None:
        self._held.depth -= 1
        self._lock.release()

    def held_here(self) -> bool:
        """Whether this thread holds the lock (its statements then belong on the writers' connection)."""
        return getattr(self._held, "depth", 0) > 0

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Rows:
    """A statement's result, read in full before its connection was let go: what callers use of a
    ``sqlite3.Cursor`` (its rows, ``description``, ``rowcount``, ``lastrowid``), with no statement left
    active."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.description = cursor.description
        self._rows: list[Any] = cursor.fetchall() if cursor.description is not None else []
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self._next = 0

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int = 1) -> list[Any]:
        start, self._next = self._next, min(self._next + size, len(self._rows))
        return self._rows[start : self._next]

    def fetchall(self) -> list[Any]:
        start, self._next = self._next, len(self._rows)
        return self._rows[start:]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._next = len(self._rows)


def _reads_only(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


class Database(sqlite_utils.Database):
    """sqlite-utils' Database whose transactions take the write lock when they begin.

    sqlite-utils' ``atomic()`` begins with a plain (deferred) ``BEGIN``: its first read takes a read
    snapshot, and its first write must then upgrade it. If another connection wrote in between, or holds
    the write lock, SQLite cannot wait for the upgrade (the snapshot would be stale) and fails at once with
    "database is locked", whatever the busy timeout. ``BEGIN IMMEDIATE`` takes the write lock first, so a
    busy database is waited for, up to ``BUSY_TIMEOUT_SECONDS``.
    """

    checkpointer: Checkpointer | None = None  # a file's (``database.wal``); none for a database in memory
    # The file the readers' connections open; None (a database in memory): every statement holds the lock.
    reader_path: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._readers_lock = threading.Lock()  # around the three below
        self._readers: list[sqlite3.Connection] = []  # every reader open
        self._idle_readers: list[sqlite3.Connection] = []  # those not lent now
        self._closed = False

    def execute(  # type: ignore[override]  # Rows, not a live cursor: no statement is left active
        self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None
    ) -> Rows:
        """A SELECT from a thread without the lock runs on a reader; any other statement holds the lock.
        Either way the rows are read in full before the connection is let go."""
        lock = write_lock(self)
        if self.reader_path is not None and _reads_only(sql) and not lock.held_here():
            with self._borrowed() as reader:
                return Rows(reader.execute(sql, () if parameters is None else parameters))
        with lock:
            return Rows(super().execute(sql, parameters))

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> Generator[dict[str, Any], None, None]:
        lock = write_lock(self)
        if self.reader_path is not None and _reads_only(sql) and not lock.held_here():
            rows = self.execute(sql, params)
            keys = [column[0] for column in rows.description]
            return (dict(zip(keys, row, strict=True)) for row in rows)
        with lock:
            return (row for row in list(super().query(sql, params)))

    @contextlib.contextmanager
    def reading(self) -> Generator[sqlite3.Connection, None, None]:
        """A connection to read through, for a reader that needs a ``sqlite3.Connection`` itself
        (``pandas.read_sql_query``): a reader for as long as the block lasts, or the writers' one with the
        lock held throughout (the lock's holder, a database in memory)."""
        lock = write_lock(self)
        if self.reader_path is not None and not lock.held_here():
            with self._borrowed() as reader:
                yield reader
            return
        with lock:
            yield self.conn

    @contextlib.contextmanager
    def _borrowed(self) -> Generator[sqlite3.Connection, None, None]:
        """A reader connection, this block's alone: an idle one, or a new one when every other is lent.

        Lent per statement rather than kept per thread, so there are never more readers than reads at
        once, whatever threads come and go (the outbox's drain has a thread of its own each time)."""
        with self._readers_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            reader = self._idle_readers.pop() if self._idle_readers else None
        if reader is None:
            assert self.reader_path is not None
            reader = connect(self.reader_path, check_same_thread=False, autocommit=True)
            reader.execute("PRAGMA query_only = ON")  # a write sent here by mistake fails, loudly
            with self._readers_lock:
                self._readers.append(reader)
        try:
            yield reader
        finally:
            with self._readers_lock:
                if not self._closed:
                    self._idle_readers.append(reader)

    def readers(self) -> int:
        """How many reader connections are open."""
        with self._readers_lock:
            return len(self._readers)

    @contextlib.contextmanager
    def atomic(self) -> Generator[sqlite_utils.Database, None, None]:
        """A transaction that holds the lock from its ``BEGIN IMMEDIATE`` to its end (writers take the lock
        first anyway, to span more than the transaction)."""
        with write_lock(self):
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
        """Stop the background checkpoints and close the readers first: the last connection to close
        checkpoints the rest."""
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is not None:
            checkpointer.stop()
        with self._readers_lock:
            self._closed = True
            readers, self._readers, self._idle_readers = self._readers, [], []
        for reader in readers:
            reader.close()
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
        db.reader_path = str(path)
    db._capgap_write_lock = ConnectionLock()  # type: ignore[attr-defined]
    return db


def write_lock(db: sqlite_utils.Database) -> ConnectionLock:
    """The one lock every writer of this connection holds around its transaction.

    Transactions belong to the connection, not the thread: two writers in different threads, each with
    a lock of its own, would nest one's statements inside the other's transaction (sqlite-utils' atomic()
    then takes a savepoint of a transaction it does not own). One lock per connection keeps them apart.
    """
    lock = getattr(db, "_capgap_write_lock", None)
    if lock is None:
        lock = ConnectionLock()
        db._capgap_write_lock = lock  # type: ignore[attr-defined]
    return lock


@contextlib.contextmanager
def reading(db: sqlite_utils.Database) -> Generator[sqlite3.Connection, None, None]:
    """The connection this thread reads ``db`` through (``Database.reading``); for a plain sqlite-utils
    database, its only connection with the lock held."""
    if isinstance(db, Database):
        with db.reading() as conn:
            yield conn
        return
    with write_lock(db):
        yield db.conn
