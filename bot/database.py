"""The database file as an operator handles it: the lock a running bot holds, online backup, restore.

A running ``capgap run`` holds an exclusive advisory lock (``flock``) on ``<CAPGAP_DB>.lock`` for its whole
life. The kernel drops the lock when the process ends, however it ends (``kill -9`` included), so a stale
lock file never blocks anything. ``capgap restore`` takes the same lock before it touches the database, so
it cannot overwrite the file under a running bot, and a second ``capgap run`` on the same file refuses to
start. (``flock`` is per host: put the database on a local disk or volume, not on a network share.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


class DatabaseBusy(RuntimeError):
    """Another process (a running bot) holds the database."""


class NotABackup(ValueError):
    """The file to restore is not a sound capgap database."""


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


@contextlib.contextmanager
def hold(db_path: Path) -> Iterator[None]:
    """Hold the database's lock for the duration of the ``with`` block; DatabaseBusy if someone has it."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[bytes] = path.open("a+b")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseBusy(
                f"{db_path} is in use by a running capgap (it holds {path.name}); stop it first"
            ) from None
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock


@dataclass(frozen=True)
class Copied:
    path: Path
    bytes: int
    tables: dict[str, int]  # rows per table, for the operator to eyeball


def _check(path: Path) -> dict[str, int]:
    """Rows per table of a sound capgap database at ``path``; NotABackup otherwise."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise NotABackup(f"{path} cannot be opened as SQLite: {exc}") from None
    try:
        (verdict,) = conn.execute("PRAGMA integrity_check").fetchone()
        if verdict != "ok":
            raise NotABackup(f"{path} fails SQLite's integrity check: {verdict}")
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if "migrations" not in names:
            raise NotABackup(f"{path} is an SQLite file but not a capgap database (no migrations table)")
        # Table names come from the file's own catalogue, quoted as identifiers; no value is interpolated.
        return {
            name: conn.execute(f'SELECT COUNT(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
            for name in sorted(names)
            if not name.startswith("sqlite_")
        }
    except sqlite3.DatabaseError as exc:
        raise NotABackup(f"{path} is not a usable SQLite database: {exc}") from None
    finally:
        conn.close()


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """SQLite's online backup of ``source`` into a new file ``target``, in one step.

    One step (``pages=-1``) reads the whole database inside one read transaction: the copy is the
    database as it was at one instant, while the bot goes on writing (WAL lets a reader and a writer run
    side by side). The copy is switched out of WAL mode so that it is one self-contained file.
    """
    destination = sqlite3.connect(target)
    try:
        source.backup(destination, pages=-1)
        destination.execute("PRAGMA journal_mode = DELETE")
    finally:
        destination.close()


def backup(db_path: Path, target: Path, now: datetime | None = None) -> Copied:
    """Copy the live database at ``db_path`` to ``target`` (a file, or a directory to put a dated file in)."""
    if not db_path.is_file():
        raise FileNotFoundError(f"there is no database at {db_path}")
    if target.is_dir():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
        target = target / f"capgap-{stamp}.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # Read-only: a backup never writes to the live database, not even to create it.
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30.0)
    try:
        _copy(source, partial)
    finally:
        source.close()
    tables = _check(partial)
    os.replace(partial, target)  # a half-written backup never carries the final name
    return Copied(target, target.stat().st_size, tables)


def restore(backup_path: Path, db_path: Path, now: datetime | None = None) -> tuple[Copied, Path | None]:
    """Put the backup at ``backup_path`` in place of the database at ``db_path``, while no bot runs.

    The database it replaces is kept beside it as ``<name>.before-restore-<time>``; returns what was
    restored and where the old database went (None when there was none).
    """
    tables = _check(backup_path)
    with hold(db_path):
        incoming = db_path.with_name(db_path.name + ".restoring")
        incoming.unlink(missing_ok=True)
        source = sqlite3.connect(f"file:{backup_path}?mode=ro", uri=True)
        try:
            _copy(source, incoming)
        finally:
            source.close()
        kept = None
        if db_path.exists():
            stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
            kept = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
            # Checkpointed first, so the kept file holds everything the old write-ahead log had.
            old = sqlite3.connect(db_path, timeout=5.0)
            try:
                (busy, _, _) = old.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                old.close()
            if busy:
                raise DatabaseBusy(f"{db_path} is open in another process (a `capgap ask`?); try again")
            os.replace(db_path, kept)
        for suffix in ("-wal", "-shm"):  # a log left beside the new file would be applied to it
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
        os.replace(incoming, db_path)
    return Copied(db_path, db_path.stat().st_size, tables), kept
