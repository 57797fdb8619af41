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
import itertools
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from database.connection import PRIVATE_MODE, connect, private_file


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
    handle: IO[bytes] = os.fdopen(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_MODE), "r+b")
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
        conn = connect(f"file:{path}?mode=ro", uri=True)
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
    side by side). The copy is switched out of WAL mode so that it is one self-contained file, readable by
    its owner only, like the database.
    """
    private_file(target)
    destination = connect(target)
    try:
        source.backup(destination, pages=-1)
        destination.execute("PRAGMA journal_mode = DELETE")
    finally:
        destination.close()


def throwaway_copy(db_path: Path, directory: Path) -> Path:
    """A copy of the database at ``db_path`` in ``directory``, for a command that must leave the live
    file alone (``capgap ask``); where there is no database yet, the path of a new one there."""
    target = directory / db_path.name
    if db_path.is_file():
        # Read-only, as a backup: the live file is not written to, not even to create it.
        source = connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            _copy(source, target)
        finally:
            source.close()
    return target


def unused_name(directory: Path, stem: str, suffix: str = "") -> Path:
    """``directory/stem+suffix``, or with ``-2``, ``-3``… after the stem if that is taken (two copies made
    in the same second keep both)."""
    for number in itertools.count(1):
        candidate = directory / f"{stem}{'' if number == 1 else f'-{number}'}{suffix}"
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")


def backup(db_path: Path, to: Path | str, now: datetime | None = None) -> Copied:
    """Copy the live database at ``db_path`` to ``to``: a file, or an existing directory to put a dated
    file in (a trailing slash says a directory is meant). A directory that does not exist is refused
    rather than made: a backup disk that is not mounted must not turn into a folder on the system disk."""
    if not db_path.is_file():
        raise FileNotFoundError(f"there is no database at {db_path}")
    target = Path(to)
    directory_meant = str(to).endswith(("/", os.sep))
    if target.is_dir():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
        target = unused_name(target, f"capgap-{stamp}", ".db")
    elif directory_meant or not target.parent.is_dir():
        missing = target if directory_meant else target.parent
        raise FileNotFoundError(
            f"there is no directory {missing} to write the backup in; create it first (mkdir -p {missing})"
        )
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # Read-only: a backup never writes to the live database, not even to create it.
    source = connect(f"file:{db_path}?mode=ro", uri=True, timeout=30.0)
    try:
        _copy(source, partial)
    finally:
        source.close()
    tables = _check(partial)
    os.replace(partial, target)  # a half-written backup never carries the final name
    return Copied(target, target.stat().st_size, tables)


def restore(backup_path: Path, db_path: Path, now: datetime | None = None) -> tuple[Copied, Path | None]:
    """Put the backup at ``backup_path`` in place of the database at ``db_path``, while no bot runs.

    The database it replaces is kept beside it as ``<name>.before-restore-<time>`` (``-2``, ``-3``… when
    that name is taken); returns what was restored and where the old database went (None when there was
    none).
    """
    tables = _check(backup_path)
    with hold(db_path):
        incoming = db_path.with_name(db_path.name + ".restoring")
        incoming.unlink(missing_ok=True)
        source = connect(f"file:{backup_path}?mode=ro", uri=True)
        try:
            _copy(source, incoming)
        finally:
            source.close()
        kept = None
        if db_path.exists():
            stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
            kept = unused_name(db_path.parent, f"{db_path.name}.before-restore-{stamp}")
            # Checkpointed first, so the kept file holds everything the old write-ahead log had.
            old = connect(db_path, timeout=5.0)
            try:
                (busy, _, _) = old.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                damaged = False
            except sqlite3.DatabaseError:  # a damaged file, which is why it is being replaced
                busy, damaged = 0, True
            finally:
                old.close()
            if busy:
                raise DatabaseBusy(f"{db_path} is open in another process (a `capgap ask`?); try again")
            os.replace(db_path, kept)
            if damaged:  # its log, unread, goes with it: nothing of the old file is thrown away
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(f"{db_path}{suffix}", f"{kept}{suffix}")
        for suffix in ("-wal", "-shm"):  # a log left beside the new file would be applied to it
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
        os.replace(incoming, db_path)
    return Copied(db_path, db_path.stat().st_size, tables), kept


def database_problem(db_path: Path, error: sqlite3.Error) -> str:
    """One line for an operator whose database cannot be opened: which file, what SQLite said, what to do."""
    said = str(error) or error.__class__.__name__
    lowered = said.lower()
    if "full" in lowered or "disk i/o" in lowered:
        advice = (
            "make room on its disk (or check the disk) and start again; if the file was damaged, "
            "`capgap restore BACKUP` puts a backup in its place"
        )
    elif "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
        advice = "check that its directory exists and that this user may write there"
    elif "locked" in lowered or "busy" in lowered:
        advice = "another process holds it (a `capgap backup`?); try again in a moment"
    else:
        advice = (
            "it looks damaged: put a backup in its place with `capgap restore BACKUP` "
            "(the damaged file is kept beside it)"
        )
    return f"cannot use the database {db_path} ({said}): {advice}"
