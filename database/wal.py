"""The write-ahead log copied back into the database file off the writers' path.

In WAL mode every commit appends the pages it changed to ``<db>-wal``; a checkpoint copies them back into
the database file. SQLite's default runs that checkpoint inside the commit that takes the log past 1,000
pages: a refresh that fires thousands of alerts, changing thousands of pages of a million-row rules table,
then waits for all of them to be written twice (and synced) before it returns. capgap's connections turn that
off (``wal_autocheckpoint = 0``) and a ``Checkpointer`` thread with a connection of its own runs a PASSIVE
checkpoint once the log passes the same size. PASSIVE never blocks a reader or a writer: what it cannot
copy yet (a reader still needs it) waits for the next round. Closing the last connection checkpoints the
rest, as SQLite always does.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# SQLite's own default threshold, in pages of the log.
CHECKPOINT_PAGES = 1000
# How often the thread looks at the log's size: a stat of one file.
CHECK_EVERY_SECONDS = 1.0
# After a checkpoint lets the log start over, its file is cut back to this size: a one-off burst (a
# checkpoint of every rule's last value) does not leave a log of hundreds of MB on disk.
LOG_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


class Checkpointer:
    """Checkpoints the database at ``path`` whenever its log is past ``pages`` pages, until ``stop``."""

    def __init__(
        self,
        path: Path | str,
        opener: Callable[[], sqlite3.Connection],
        pages: int = CHECKPOINT_PAGES,
        every: float = CHECK_EVERY_SECONDS,
    ) -> None:
        self.path = Path(path)
        self._open = opener
        self.pages = pages
        self.every = every
        self.checkpoints = 0
        self.checkpointed = threading.Event()  # set after each checkpoint, for whoever waits on one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {self.path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = self._open()
        except sqlite3.Error as exc:
            # Whoever opened the database meets the same problem and reports it; the log keeps growing
            # until the last connection closes, as it would with no thread at all.
            log.debug("no background checkpoints for %s: %s", self.path, exc)
            return
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
            wal = Path(f"{self.path}-wal")
            while not self._stop.wait(self.every):
                try:
                    if wal.stat().st_size <= self.pages * page_size:
                        continue
                except FileNotFoundError:
                    continue
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except (
                    sqlite3.Error
                ) as exc:  # busy or a full disk: the log keeps the pages for the next round
                    log.warning("background checkpoint of %s failed: %s", self.path, exc)
                    continue
                self.checkpoints += 1
                self.checkpointed.set()
        except sqlite3.Error as exc:
            log.debug("no background checkpoints for %s: %s", self.path, exc)
        finally:
            conn.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """End the thread (and close its connection) once its current round is over."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()


def checkpoint_in_background(
    conn: sqlite3.Connection, path: Path | str, opener: Callable[[], sqlite3.Connection], owner: object
) -> Checkpointer:
    """Take the checkpoints off ``conn``'s commits and run them in a ``Checkpointer`` (on a connection
    from ``opener``) that stops when ``owner`` is closed or garbage-collected."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(f"PRAGMA journal_size_limit = {LOG_SIZE_LIMIT_BYTES}")
    checkpointer = Checkpointer(path, opener)
    # Also at interpreter exit (a finalizer's default): a database left open, as a failed start leaves it,
    # does not have its thread still at work, or logging, while the interpreter shuts down.
    weakref.finalize(owner, checkpointer.stop)
    return checkpointer
