"""database/connection.py: one connection shared by the bot's threads, and reads that never meet another
thread's transaction.

What a bot met before: a /alerts read on the writers' connection while the first refresh after a start
was in its transaction. sqlite-utils' first upsert creates and drops a table to learn whether SQLite has
upserts; the drop failed ("database table is locked") because the read's statement was still active on the
connection, the refresh rolled back, and the rollback aborted the read ("abort due to ROLLBACK"): the user
got "something went wrong". Real SQLite files and real threads here; no test waits on a clock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlite_utils

from database.connection import Database, open_database, reading, write_lock

WAIT = 30.0  # only a failing run waits this long


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    opened = open_database(tmp_path / "capgap.db")
    assert isinstance(opened, Database)
    opened.execute("CREATE TABLE notes (n INTEGER PRIMARY KEY, text TEXT)")
    opened["notes"].insert_all([{"n": n, "text": f"note {n}"} for n in (1, 2, 3)])
    yield opened
    opened.close()


def elsewhere(work: Callable[[], Any]) -> Any:
    """``work``'s result, computed in another thread (as a command's work runs in asyncio.to_thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result(timeout=WAIT)


def test_a_read_from_another_thread_sees_the_last_commit_and_does_not_wait_for_a_transaction(
    db: Database,
) -> None:
    with write_lock(db), db.atomic():
        db.execute("INSERT INTO notes VALUES (4, 'not yet')")
        db.execute("UPDATE notes SET text = 'changed' WHERE n = 1")
        # Inside the transaction its own statements see its writes...
        assert db.execute("SELECT COUNT(*) FROM notes").fetchone() == (4,)
        # ...another thread sees the last commit, at once (it would wait WAIT seconds for the lock).
        assert elsewhere(lambda: db.execute("SELECT n, text FROM notes ORDER BY n").fetchall()) == [
            (1, "note 1"),
            (2, "note 2"),
            (3, "note 3"),
        ]
        assert elsewhere(lambda: [row["n"] for row in db.query("SELECT n FROM notes ORDER BY n")]) == [
            1,
            2,
            3,
        ]
        db.execute("ROLLBACK")
    assert db.execute("SELECT COUNT(*) FROM notes").fetchone() == (3,)


def test_a_rollback_does_not_abort_a_read_under_way_in_another_thread(db: Database) -> None:
    """Half of a read fetched, the writers' transaction (one that changed the schema, as sqlite-utils'
    probe does) rolls back, the rest of the read follows."""
    db["notes"].insert_all([{"n": n, "text": f"note {n}"} for n in range(4, 2001)])
    cursor = elsewhere(lambda: db.execute("SELECT n FROM notes ORDER BY n"))
    first = elsewhere(lambda: cursor.fetchmany(500))

    def doomed() -> None:
        with write_lock(db), db.atomic():
            db.execute("CREATE TABLE scratch (x)")
            db.execute("DELETE FROM notes WHERE n > 1000")
            db.execute("INSERT INTO notes VALUES (1, 'a duplicate')")  # fails: the transaction rolls back

    with pytest.raises(sqlite3.IntegrityError):
        doomed()
    assert "scratch" not in db.table_names()
    rest = elsewhere(cursor.fetchall)
    assert [n for (n,) in first + rest] == list(range(1, 2001))


def test_sqlite_utils_first_upsert_while_another_thread_is_reading(db: Database) -> None:
    """The table sqlite-utils creates and drops to learn about upserts is dropped while a read in another
    thread still has rows to give."""
    cursor = elsewhere(lambda: db.execute("SELECT n FROM notes ORDER BY n"))
    assert elsewhere(cursor.fetchone) == (1,)
    fresh = Database(db.conn)  # has not yet asked SQLite whether it can upsert
    fresh._capgap_write_lock = write_lock(db)  # type: ignore[attr-defined]
    with write_lock(db), db.atomic():
        fresh["notes"].upsert_all([{"n": 2, "text": "upserted"}], pk="n")
    assert elsewhere(cursor.fetchall) == [(2,), (3,)]
    assert db.execute("SELECT text FROM notes WHERE n = 2").fetchone() == ("upserted",)


def test_a_frame_read_in_another_thread_sees_the_last_commit(db: Database) -> None:
    def frame() -> list[int]:
        with reading(db) as conn:
            return pd.read_sql_query("SELECT n FROM notes ORDER BY n", conn)["n"].tolist()

    with write_lock(db), db.atomic():
        db.execute("DELETE FROM notes WHERE n = 2")
        assert elsewhere(frame) == [1, 2, 3]
        assert frame() == [1, 3]  # the transaction's own thread reads its writes
    assert elsewhere(frame) == [1, 3]


def test_the_readers_cannot_write(db: Database) -> None:
    """A write can only reach a reader by mistake (a SELECT that writes); SQLite refuses it there."""

    def write_through_a_reader() -> None:
        with db.reading() as reader:
            reader.execute("INSERT INTO notes VALUES (9, 'no')")

    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
        elsewhere(write_through_a_reader)


def test_readers_are_lent_per_read_so_threads_that_come_and_go_leave_none_behind(db: Database) -> None:
    """The outbox's drain reads from a thread of its own each time: twenty such threads, one after
    another, share one reader; two reads at once take two, and later reads reuse them."""
    for _ in range(20):
        assert elsewhere(lambda: db.execute("SELECT COUNT(*) FROM notes").fetchone()) == (3,)
    assert db.readers() == 1
    with db.reading() as first, db.reading() as second:
        assert first is not second
        assert elsewhere(lambda: db.execute("SELECT COUNT(*) FROM notes").fetchone()) == (3,)
    assert db.readers() == 3
    for _ in range(5):
        elsewhere(lambda: db.execute("SELECT 1 FROM notes").fetchall())
    assert db.readers() == 3


def test_a_closed_database_refuses_reads(tmp_path: Path) -> None:
    closed = open_database(tmp_path / "closed.db")
    assert isinstance(closed, Database)
    closed.execute("CREATE TABLE t (x)")
    closed.close()
    with pytest.raises(sqlite3.ProgrammingError):
        closed.execute("SELECT x FROM t")


def sent_during_a_rolled_back_transaction(db: Database, insert: str, work: Callable[[], Any]) -> Any:
    """``work``'s result, sent from another thread once this one's transaction has inserted (``insert``),
    and known after that transaction has rolled back."""
    started = threading.Event()

    def signalled() -> Any:
        started.set()
        return work()

    with ThreadPoolExecutor(max_workers=1) as pool:
        with write_lock(db), db.atomic():
            db.execute(insert)
            outcome = pool.submit(signalled)
            assert started.wait(WAIT)
            db.execute("ROLLBACK")
        return outcome.result(timeout=WAIT)


def test_a_write_from_another_thread_waits_for_the_transaction_and_lands_after_it(db: Database) -> None:
    """Writes share the one connection: a write sent while another thread's transaction is open waits for
    the lock instead of landing inside (and being rolled back with) that transaction."""
    sent_during_a_rolled_back_transaction(
        db,
        "INSERT INTO notes VALUES (5, 'rolled back')",
        lambda: db.execute("INSERT INTO notes VALUES (10, 'from elsewhere')"),
    )
    assert [n for (n,) in db.execute("SELECT n FROM notes ORDER BY n")] == [1, 2, 3, 10]


def test_a_database_in_memory_serialises_its_reads_with_the_transactions() -> None:
    """One connection and no file for readers: a read from another thread waits for the transaction, so it
    never sees a row that is then rolled back."""
    memory = open_database(":memory:")
    assert isinstance(memory, Database)
    try:
        memory.execute("CREATE TABLE notes (n INTEGER PRIMARY KEY)")
        memory.execute("INSERT INTO notes VALUES (1)")
        seen = sent_during_a_rolled_back_transaction(
            memory,
            "INSERT INTO notes VALUES (2)",
            lambda: [n for (n,) in memory.execute("SELECT n FROM notes")],
        )
        assert seen == [1]
    finally:
        memory.close()


def test_a_plain_sqlite_utils_database_reads_under_the_lock(tmp_path: Path) -> None:
    plain = sqlite_utils.Database(tmp_path / "plain.db")
    plain["t"].insert({"x": 1})
    with reading(plain) as conn:
        assert write_lock(plain).held_here()
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not write_lock(plain).held_here()
