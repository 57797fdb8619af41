"""database/files.py and `capgap backup` / `capgap restore`: consistent copies of a live database, and no
restore under a running bot. Real SQLite files, real processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from database.connection import open_database
from database.files import DatabaseBusy, backup, hold, lock_path, restore
from testing.telegram import TelegramEmulator
from testing.world import SHARED_DATA, TEST_TOKEN
from tests.conftest import bot_process

CHAT = 5005
FIRST_WRITER_CHAT = 10_000_000  # far from any chat the history database knows


def capgap(*args: str, db: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPGAP_")}
    env.update(CAPGAP_DB=str(db), **settings)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        cwd=db.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def live_db(tmp_path: Path, history_db: Path) -> Path:
    """A capgap database (schema, cache and all) in WAL mode, as a running bot leaves it."""
    db = tmp_path / "capgap.db"
    shutil.copyfile(history_db, db)
    from bot.services import build_services
    from testing.world import make_config

    build_services(
        make_config(tmp_path, f"csv:{SHARED_DATA}", db_path=db)
    ).close()  # runs the alert migrations
    return db


class Writer(threading.Thread):
    """Writes pairs that belong together (a chat and its outbox row) in one transaction each, until told to
    stop (or a bound is reached): a consistent copy holds whole pairs only."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.written = 0
        self.started_writing = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None, timeout=30)
        try:
            while not self.stop.is_set() and self.written < 2_000_000:
                chat = FIRST_WRITER_CHAT + self.written
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO chats (chat_id, type, zone, active, created_at) VALUES (?, 'private', 'UTC', 1, '')",
                    [chat],
                )
                conn.execute(
                    "INSERT INTO outbox (chat_id, text, kind, created_at, due_at, attempts, status) "
                    "VALUES (?, 'x', 'alert', '', '', 0, 'pending')",
                    [chat],
                )
                conn.execute("COMMIT")
                self.written += 1
                if self.written == 200:
                    self.started_writing.set()
        finally:
            conn.close()


@pytest.fixture
def writer(live_db: Path) -> Iterator[Writer]:
    thread = Writer(live_db)
    thread.start()
    assert thread.started_writing.wait(30), "the writer never got going"
    yield thread
    thread.stop.set()
    thread.join(30)


def pairs(path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(path)) as conn:
        chats = conn.execute("SELECT COUNT(*) FROM chats WHERE chat_id >= ?", [FIRST_WRITER_CHAT]).fetchone()[
            0
        ]
        rows = conn.execute("SELECT COUNT(*) FROM outbox WHERE chat_id >= ?", [FIRST_WRITER_CHAT]).fetchone()[
            0
        ]
        return chats, rows


def test_backups_taken_while_a_writer_runs_are_consistent(
    live_db: Path, writer: Writer, tmp_path: Path
) -> None:
    seen = []
    for n in range(3):
        copy = tmp_path / f"backup-{n}.db"
        done = capgap("backup", str(copy), db=live_db)
        assert done.returncode == 0, done.stderr
        assert f"backed up {live_db} to {copy}" in done.stdout and "closes " in done.stdout
        chats, rows = pairs(copy)
        assert chats == rows > 0  # whole transactions only
        seen.append(chats)
        with closing(sqlite3.connect(copy)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        assert not (tmp_path / f"backup-{n}.db.partial").exists()
    writer.stop.set()
    writer.join(30)
    assert seen == sorted(seen) and writer.written > seen[0]  # the writer went on during the backups


def test_a_backup_into_a_directory_gets_a_dated_name_of_its_own(live_db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    done = capgap("backup", f"{folder}/", db=live_db)
    assert done.returncode == 0, done.stderr
    (made,) = folder.glob("capgap-*.db")
    assert made.stem[len("capgap-") :].replace("-", "").isdigit()
    # Two in the same second (a retried nightly job) keep both.
    moment = datetime(2024, 1, 18, 22, 0, 5, tzinfo=UTC)
    first, second = backup(live_db, folder, now=moment), backup(live_db, folder, now=moment)
    assert (first.path.name, second.path.name) == ("capgap-20240118-220005.db", "capgap-20240118-220005-2.db")
    assert first.path.is_file() and second.path.is_file()


@pytest.mark.parametrize("given", ["backups/", "backups/nightly.db"])
def test_a_backup_into_a_missing_directory_is_refused_and_makes_nothing(
    live_db: Path, tmp_path: Path, given: str
) -> None:
    """A backup disk that is not mounted must not become a folder on the system disk."""
    done = capgap("backup", str(tmp_path / given) + ("/" if given.endswith("/") else ""), db=live_db)
    missing = tmp_path / "backups"
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"capgap: there is no directory {missing} to write the backup in; create it first (mkdir -p {missing})\n"
    )
    assert not missing.exists()


def test_backing_up_a_missing_database_is_a_one_line_error(tmp_path: Path) -> None:
    done = capgap("backup", str(tmp_path / "b.db"), db=tmp_path / "nothing.db")
    assert (done.returncode, done.stderr) == (
        1,
        f"capgap: there is no database at {tmp_path / 'nothing.db'}\n",
    )


def test_restore_refuses_while_the_database_lock_is_held(live_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.db"
    assert capgap("backup", str(backup), db=live_db).returncode == 0
    before = live_db.read_bytes()
    with hold(live_db):
        done = capgap("restore", str(backup), db=live_db)
        with pytest.raises(DatabaseBusy), hold(live_db):
            pass
    assert done.returncode == 1
    assert "is in use by a running capgap" in done.stderr and "stop it first" in done.stderr
    assert live_db.read_bytes() == before
    assert lock_path(live_db).exists()  # left behind, and harmless: the kernel let go of the lock
    with hold(live_db):
        pass


@pytest.mark.parametrize("junk", ["text", "sqlite without capgap", "truncated"])
def test_restore_refuses_what_is_not_a_sound_capgap_database(
    live_db: Path, tmp_path: Path, junk: str
) -> None:
    bad = tmp_path / "bad.db"
    if junk == "text":
        bad.write_text("not a database at all")
    elif junk == "sqlite without capgap":
        with closing(sqlite3.connect(bad)) as conn:
            conn.execute("CREATE TABLE notes (x)")
    else:
        assert capgap("backup", str(bad), db=live_db).returncode == 0
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    before = live_db.read_bytes()
    done = capgap("restore", str(bad), db=live_db)
    assert done.returncode == 1 and done.stderr.startswith("capgap: ") and done.stderr.count("\n") == 1
    assert live_db.read_bytes() == before


def test_restore_puts_the_backup_in_place_and_keeps_the_old_database(live_db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.db"
    assert capgap("backup", str(backup), db=live_db).returncode == 0
    # A change after the backup by a process that then dies (as a bot under kill -9): it stays in the
    # write-ahead log, not yet in the database file.
    crash = (
        "import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute(\"INSERT INTO chats (chat_id, type, zone, active) VALUES (1, 'private', 'UTC', 1)\"); "
        "c.commit(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", crash, str(live_db)], check=True, timeout=60)
    assert live_db.with_name("capgap.db-wal").stat().st_size > 0
    done = capgap("restore", str(backup), db=live_db)
    assert done.returncode == 0, done.stderr
    (kept,) = tmp_path.glob("capgap.db.before-restore-*")
    assert f"kept as {kept}" in done.stdout
    assert not live_db.with_name("capgap.db-wal").exists()  # no old log next to the new file
    with closing(sqlite3.connect(live_db)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM chats WHERE chat_id = 1").fetchone()[0] == 0
    with closing(sqlite3.connect(kept)) as conn:  # nothing of the old database is lost, its log included
        assert conn.execute("SELECT COUNT(*) FROM chats WHERE chat_id = 1").fetchone()[0] == 1


def test_two_restores_in_one_second_keep_both_databases_they_replaced(live_db: Path, tmp_path: Path) -> None:
    copy = backup(live_db, tmp_path / "b.db").path
    moment = datetime(2024, 1, 18, 22, 0, 5, tzinfo=UTC)
    with closing(sqlite3.connect(live_db)) as conn, conn:
        conn.execute("INSERT INTO chats (chat_id, type, zone, active) VALUES (1, 'private', 'UTC', 1)")
    _, first = restore(copy, live_db, now=moment)
    with closing(sqlite3.connect(live_db)) as conn, conn:
        conn.execute("INSERT INTO chats (chat_id, type, zone, active) VALUES (2, 'private', 'UTC', 1)")
    _, second = restore(copy, live_db, now=moment)

    assert first is not None and second is not None
    assert (first.name, second.name) == (
        "capgap.db.before-restore-20240118-220005",
        "capgap.db.before-restore-20240118-220005-2",
    )
    for kept, chat in ((first, 1), (second, 2)):  # each holds the database it replaced
        with closing(sqlite3.connect(kept)) as conn:
            assert conn.execute("SELECT chat_id FROM chats WHERE chat_id IN (1, 2)").fetchall() == [(chat,)]


def test_restore_replaces_a_damaged_database_and_keeps_it(live_db: Path, tmp_path: Path) -> None:
    copy = backup(live_db, tmp_path / "b.db").path
    damage = b"not a database " * 400
    live_db.write_bytes(damage)
    done = capgap("restore", str(copy), db=live_db)
    assert done.returncode == 0, done.stderr
    (kept,) = tmp_path.glob("capgap.db.before-restore-????????-??????")
    assert kept.read_bytes() == damage
    assert f"kept as {kept}" in done.stdout
    with closing(sqlite3.connect(live_db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_database_its_log_lock_and_copies_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, under which files come out 0644
    try:
        db_path = tmp_path / "capgap.db"
        db = open_database(db_path)
        db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        db.execute("INSERT INTO migrations VALUES ('m', 'now')")
        assert {p.name: mode(p) for p in tmp_path.iterdir()} == {
            "capgap.db": 0o600,
            "capgap.db-wal": 0o600,
            "capgap.db-shm": 0o600,
        }
        with hold(db_path):
            assert mode(lock_path(db_path)) == 0o600
        copy = backup(db_path, tmp_path / "b.db").path
        assert mode(copy) == 0o600
        db.close()
        _, kept = restore(copy, db_path)
        assert kept is not None and mode(kept) == 0o600 and mode(db_path) == 0o600

        older = tmp_path / "older.db"  # made world-readable by an earlier capgap
        with closing(sqlite3.connect(older)) as conn:
            conn.execute("CREATE TABLE t (x)")
        older.chmod(0o644)
        open_database(older).close()
        assert mode(older) == 0o600
    finally:
        os.umask(previous)


def test_a_write_waits_for_another_connections_write_transaction(tmp_path: Path) -> None:
    """A transaction that reads, then writes (as the stores' do), waits out a write lock held elsewhere
    instead of failing at once with "database is locked"."""
    db = open_database(tmp_path / "capgap.db")
    db.execute("CREATE TABLE notes (n INTEGER)")
    other = sqlite3.connect(tmp_path / "capgap.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notes VALUES (1)")
    beginning = threading.Event()
    db.conn.set_trace_callback(lambda sql: beginning.set() if sql.startswith("BEGIN") else None)

    def release() -> None:
        beginning.wait(30)
        # Held a moment longer, so the write meets the lock rather than racing past it; the write waits
        # for as long as it takes (up to the busy timeout), so this is no bet on the machine's speed.
        time.sleep(0.2)
        other.execute("COMMIT")

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        with db.atomic():
            (count,) = db.execute("SELECT COUNT(*) FROM notes").fetchone()
            db.execute("INSERT INTO notes VALUES (?)", [count + 1])
    finally:
        releaser.join(30)
        other.close()
    # The write came after the other transaction and saw its row.
    assert [n for (n,) in db.execute("SELECT n FROM notes ORDER BY n")] == [1, 2]


# --- with a real running bot -------------------------------------------------------------------------------


async def say(emu: TelegramEmulator, text: str) -> str:
    emu.user_message(CHAT, text)
    (reply,) = await emu.wait_for(chat_id=CHAT, method="sendMessage", timeout=30)
    return str(reply.params["text"])


async def cli(*args: str, db: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(capgap, *args, db=db, **settings)


async def test_back_up_a_running_bot_and_restore_only_once_it_has_stopped(
    telegram_emulator: TelegramEmulator, tmp_path: Path
) -> None:
    emu, db, backup = telegram_emulator, tmp_path / "capgap.db", tmp_path / "b.db"
    async with bot_process(emu, db) as bot:
        assert "Alert <b>#1</b> set" in await say(emu, "/alert rut above 3000")
        assert (await cli("backup", str(backup), db=db)).returncode == 0
        assert "Deleted #1: RUT above 3,000" in await say(emu, "/delete 1")

        refused = await cli("restore", str(backup), db=db)
        assert refused.returncode == 1 and "in use by a running capgap" in refused.stderr
        # A second bot on the same database would answer every message twice.
        second = await cli("run", db=db, CAPGAP_TELEGRAM_TOKEN=TEST_TOKEN, CAPGAP_TELEGRAM_API=emu.root)
        assert second.returncode == 1 and "in use by a running capgap" in second.stderr

        bot.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bot.wait(), 30) == 0

    restored = await cli("restore", str(backup), db=db)
    assert restored.returncode == 0, restored.stderr
    async with bot_process(emu, db):
        assert "#1</b> RUT above 3,000" in await say(emu, "/alerts")
    assert TEST_TOKEN not in (tmp_path / "bot-2024-01-18.log").read_text()
