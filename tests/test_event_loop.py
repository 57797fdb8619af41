"""The event loop keeps answering while a refresh holds the store's lock (alerts/delivery.py, bot/jobs.py).

``run_refresh`` holds the store's write lock in a worker thread for its whole pass (about 0.3 s, and a
second at 9,000 alerts). Here a thread plays that refresh: it holds the real store's lock until the test
lets go, or at most ``HOLD_AT_MOST`` seconds. The store's lock is a ``WatchedLock``, so the test knows the
moment the outbox (or the digest job) starts waiting for it. From then on a heartbeat coroutine on the loop
must tick and a command must be answered; only then does the refresh let go. Were a store call made on the
loop, the loop would stop inside it: no tick, no answer, and the refresh would let go by its timeout, which
the test sees. No assertion is about time.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from telegram.ext import CallbackContext

from alerts.delivery import DrainReport, Limits, Pacer, drain
from alerts.store import AlertStore
from bot import jobs
from bot.app import build_app
from bot.services import Services
from bot.transport import transport
from database.connection import ConnectionLock, open_database
from market.cache import MarketCache
from market.csv_source import CsvSource
from market.service import MarketService
from testing.telegram import TelegramEmulator
from testing.world import AS_OF, make_config
from tests.conftest import DirectBot, FakeClock

HOLD_AT_MOST = 30.0  # only a failing run waits this long
BEATS = 50
ASKER = 9001


class WatchedLock(ConnectionLock):
    """The connection's write lock (``database.connection.write_lock``), telling when a writer has to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if super().acquire(blocking=False):
            return True
        self.waited.set()
        return super().acquire(blocking, timeout)


class Refresh(threading.Thread):
    """Holds the store's lock as ``run_refresh`` does, until ``let_go`` (or HOLD_AT_MOST has passed)."""

    def __init__(self, store: AlertStore) -> None:
        super().__init__(name="refresh", daemon=True)
        self.store = store
        self.holding = threading.Event()
        self.let_go = threading.Event()
        self.let_go_when_told: bool | None = None

    def run(self) -> None:
        with self.store.lock:
            self.holding.set()
            self.let_go_when_told = self.let_go.wait(HOLD_AT_MOST)


class Heartbeat:
    """A coroutine that ticks on every turn of the loop it gets."""

    def __init__(self) -> None:
        self.ticks = 0
        self._target: int | None = None
        self._reached = asyncio.Event()
        self._task = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.ticks += 1
            if self._target is not None and self.ticks >= self._target:
                self._reached.set()

    async def beats(self, count: int) -> int:
        """Return once the heartbeat has ticked ``count`` more times (bounded, for a failing run)."""
        start = self.ticks
        self._target, self._reached = start + count, asyncio.Event()
        await asyncio.wait_for(self._reached.wait(), HOLD_AT_MOST * 2)
        return self.ticks - start

    def stop(self) -> None:
        self._task.cancel()


@dataclass
class World:
    bot: DirectBot
    services: Services
    lock: WatchedLock

    @property
    def emu(self) -> TelegramEmulator:
        return self.bot.emulator


@pytest.fixture
def watched_services(
    tmp_path: Path, shared_data: Path, history_db: Path, clock: FakeClock, telegram_emulator: TelegramEmulator
) -> Iterator[tuple[Services, WatchedLock]]:
    """Services as ``csv_services`` has them, but on a connection whose write lock is a WatchedLock."""
    config = make_config(tmp_path, f"csv:{shared_data}", api_root=telegram_emulator.root)
    shutil.copyfile(history_db, config.db_path)
    db = open_database(config.db_path)
    lock = WatchedLock()
    db._capgap_write_lock = lock  # before the cache and the store take it
    market = MarketService(CsvSource(shared_data, as_of=AS_OF), MarketCache(db), clock=clock)
    services = Services(config=config, market=market, alerts=AlertStore(db), admins=config.admins)
    yield services, lock
    services.close()


@pytest_asyncio.fixture
async def world(
    watched_services: tuple[Services, WatchedLock], telegram_emulator: TelegramEmulator
) -> AsyncIterator[World]:
    # Two threads for everything that is not the outbox's own (command answers, DNS): were the store
    # calls queued here instead, the waiting writes alone would fill them and the command would wait too.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
    services, lock = watched_services
    application = build_app(services.config, services, schedule=False)
    await application.initialize()
    await application.post_init(application)
    await application.start()
    yield World(DirectBot(application, telegram_emulator, services), services, lock)
    await application.stop()
    await application.shutdown()


async def answered_meanwhile(world: World) -> str:
    (reply,) = await world.bot.replies(ASKER, "/standing 5y")
    return reply


async def test_drain_leaves_the_loop_free_while_a_refresh_holds_the_store_lock(
    world: World, clock: FakeClock
) -> None:
    """20 chats with two alerts each: 16 first alerts go out, and their bookkeeping waits for the lock off
    the loop; meanwhile the heartbeat ticks and /standing is answered. Once the refresh lets go, every
    alert is marked sent once and each chat's second alert follows its first."""
    store, emu = world.services.alerts, world.emu
    chats = range(7000, 7020)
    for order in ("first", "second"):
        for chat in chats:
            store.outbox.queue(chat, f"{order} alert for {chat}", "alert", clock())
    refresh = Refresh(store)
    refresh.start()
    await asyncio.to_thread(refresh.holding.wait, HOLD_AT_MOST)
    heartbeat = Heartbeat()
    unpaced = Pacer(Limits(per_second=0, per_chat_seconds=0))
    delivery = asyncio.create_task(drain(store, transport(world.bot.application.bot), clock, unpaced))
    try:
        assert await asyncio.to_thread(world.lock.waited.wait, HOLD_AT_MOST)
        assert await heartbeat.beats(BEATS) >= BEATS
        assert "Over the last 5 years the Russell 2000" in await answered_meanwhile(world)
        assert refresh.is_alive(), (
            "the loop or the command threads stood still until the refresh let go by its timeout"
        )
        first = await emu.wait_for(lambda c: c.chat_id in chats, method="sendMessage", count=16)
        assert {c.params["text"].split()[0] for c in first} == {"first"}
        assert not delivery.done()
        assert store.db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'sent'").fetchone() == (0,)
    finally:
        refresh.let_go.set()
        refresh.join()
        report = await asyncio.wait_for(delivery, HOLD_AT_MOST)
        heartbeat.stop()

    assert refresh.let_go_when_told is True  # the loop kept going; the refresh did not time out
    assert report == DrainReport(sent=40)
    for chat in chats:
        assert [m.text for m in emu.sent_to(chat)] == [f"first alert for {chat}", f"second alert for {chat}"]
    assert store.db.execute("SELECT status, attempts, COUNT(*) FROM outbox GROUP BY 1, 2").fetchall() == [
        ("sent", 1, 40)
    ]


async def test_a_drain_cancelled_while_its_bookkeeping_waits_still_marks_what_went_out(
    world: World, clock: FakeClock
) -> None:
    """Cancelled (the bot stopping) after three alerts went out and while their marks wait for the lock:
    once the refresh lets go the three are marked sent, and the next drain sends only the three others."""
    store, emu = world.services.alerts, world.emu
    chats = range(7200, 7203)
    for order in ("first", "second"):
        for chat in chats:
            store.outbox.queue(chat, f"{order} alert for {chat}", "alert", clock())
    refresh = Refresh(store)
    refresh.start()
    await asyncio.to_thread(refresh.holding.wait, HOLD_AT_MOST)
    unpaced = Pacer(Limits(per_second=0, per_chat_seconds=0))
    telegram = transport(world.bot.application.bot)
    accepted: list[int] = []
    all_accepted = asyncio.Event()

    async def send(chat_id: int, text: str) -> None:
        """Telegram's transport, telling when its answer is back in the drain's hands."""
        await telegram(chat_id, text)
        accepted.append(chat_id)
        if len(accepted) == len(chats):
            all_accepted.set()

    delivery = asyncio.create_task(drain(store, send, clock, unpaced))
    try:
        await asyncio.wait_for(all_accepted.wait(), HOLD_AT_MOST)  # and the three marks are queued
        assert await asyncio.to_thread(world.lock.waited.wait, HOLD_AT_MOST)
        delivery.cancel()
        await asyncio.sleep(0)  # the cancellation reaches the drain while the refresh still holds on
        assert refresh.is_alive()
    finally:
        refresh.let_go.set()
        refresh.join()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(delivery, HOLD_AT_MOST)

    statuses = store.db.execute("SELECT text, status FROM outbox ORDER BY id").fetchall()
    assert [status for _, status in statuses] == ["sent"] * 3 + ["pending"] * 3
    assert await drain(store, send, clock, unpaced) == DrainReport(sent=3)
    for chat in chats:
        assert [m.text for m in emu.sent_to(chat)] == [f"first alert for {chat}", f"second alert for {chat}"]


async def test_the_digest_job_leaves_the_loop_free_while_a_refresh_holds_the_store_lock(
    world: World, clock: FakeClock
) -> None:
    """The digest job queues a chat's digest while the lock is held: it waits off the loop, the heartbeat
    ticks and /standing is answered; once the refresh lets go, the digest is queued and delivered once."""
    store, emu = world.services.alerts, world.emu
    chat = 7100
    store.chats.set_digest(chat, "16:00", now=clock() - timedelta(hours=1))  # 16:30 in New York now: due
    context: Any = CallbackContext(world.bot.application)
    refresh = Refresh(store)
    refresh.start()
    await asyncio.to_thread(refresh.holding.wait, HOLD_AT_MOST)
    heartbeat = Heartbeat()
    job = asyncio.create_task(jobs.digests(context))
    try:
        assert await asyncio.to_thread(world.lock.waited.wait, HOLD_AT_MOST)
        assert await heartbeat.beats(BEATS) >= BEATS
        assert "Over the last 5 years the Russell 2000" in await answered_meanwhile(world)
        assert refresh.is_alive(), (
            "the loop or the command threads stood still until the refresh let go by its timeout"
        )
        assert not job.done()
    finally:
        refresh.let_go.set()
        refresh.join()
        await asyncio.wait_for(job, HOLD_AT_MOST)
        heartbeat.stop()

    assert refresh.let_go_when_told is True
    (delivering,) = [t for t in asyncio.all_tasks() if t.get_name() == "deliver"]  # the job's own
    await asyncio.wait_for(delivering, HOLD_AT_MOST)
    (digest,) = emu.sent_to(chat)
    assert "RUT 1,923.65" in (digest.plain_text or "")  # the 18 Jan 2024 close
    assert store.db.execute("SELECT chat_id, kind, status FROM outbox").fetchall() == [
        (chat, "digest", "sent")
    ]
