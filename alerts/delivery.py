"""Drains the outbox to Telegram (through a ``Transport`` the bot supplies): at least once, paced, honest.

A row is marked sent only after Telegram accepted it. A crash between Telegram accepting a message and
the commit that marks it sent means that one message is sent again after the restart: the only window
where a duplicate is possible, and a deliberate one (a lost alert is worse than a repeated one).

Pacing keeps under Telegram's limits: about 30 messages a second overall, one a second per chat, 20 a
minute per group. ``RetryAfter`` postpones the row (and, as Telegram asks, all sending) for the time
given. Network errors and 5xx back off exponentially (5 s, doubling, at most ``BACKOFF_MAX`` apart) for
as long as the outage lasts: a row is given up only once it is ``GIVE_UP_AFTER`` old and still failing,
so a Telegram or host outage of hours delays alerts but loses none. ``Blocked`` deactivates the chat and
pauses its rules rather than retrying forever. ``Moved`` (a group upgraded to a supergroup, which gets a
new id) moves the chat, its rules and its queued rows to the new id, and the row goes out there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from alerts.store import AlertStore, OutboxRow

log = logging.getLogger(__name__)

BACKOFF_START = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=30)
# Only age ends the retries: counting attempts would give up after minutes of outage. A day later an alert
# about a crossing is stale, and a row still failing then most likely never goes through.
GIVE_UP_AFTER = timedelta(hours=24)
# Doublings past which BACKOFF_MAX has long been reached: a day of retries counts some sixty attempts, and
# 5 s × 2**60 would overflow timedelta.
_MAX_DOUBLINGS = 30


class Blocked(Exception):
    """The chat cannot be written to any more (the user blocked the bot, or the chat is gone)."""


class Moved(Exception):
    """The chat lives under a new id now (Telegram upgraded a group to a supergroup)."""

    def __init__(self, new_chat_id: int) -> None:
        super().__init__(f"the chat moved to {new_chat_id}")
        self.new_chat_id = new_chat_id


class RetryAfter(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


class TemporaryFailure(Exception):
    """A network error or a 5xx: worth trying again later."""


class PermanentFailure(Exception):
    """Telegram refused the message itself (a 400): retrying the same text cannot help."""


Transport = Callable[[int, str], Awaitable[None]]
T = TypeVar("T")


@dataclass
class Limits:
    per_second: float = 30.0  # all chats together
    per_chat_seconds: float = 1.0  # at most one message a second to one chat
    group_per_minute: int = 20


# Telegram counts messages as they arrive, and a send that travels late lands in the same second as the
# ones that left after it: spacing them at the limit itself lets such a second hold one too many (a 429).
# Sends are spaced for one message a second under the limit.
HEADROOM_PER_SECOND = 1.0


def paced_rate(per_second: float) -> float:
    """The rate sends are spaced at for a limit of ``per_second``: one a second under it (a limit of two or
    less as it is)."""
    return per_second - HEADROOM_PER_SECOND if per_second > 2 * HEADROOM_PER_SECOND else per_second


@dataclass
class Pacer:
    """Spaces sends to stay under ``Limits``; ``clock``/``sleep`` are injectable so tests never wait."""

    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _next_global: float = 0.0
    _next_chat: dict[int, float] = field(default_factory=dict)
    _group_sends: dict[int, deque[float]] = field(default_factory=dict)
    paused_until: float = 0.0

    def _earliest(self, chat_id: int) -> float:
        at = max(self._next_global, self._next_chat.get(chat_id, 0.0), self.paused_until)
        if chat_id < 0:  # groups and channels have negative ids
            sends = self._group_sends.get(chat_id)
            if sends and len(sends) >= self.limits.group_per_minute:
                at = max(at, sends[0] + 60.0)
        return at

    async def wait_turn(self, chat_id: int) -> None:
        while True:
            now = self.clock()
            at = self._earliest(chat_id)
            if at <= now:
                break
            await self.sleep(at - now)
        now = self.clock()
        if self.limits.per_second > 0:
            spacing = 1.0 / paced_rate(self.limits.per_second)
            # On a grid: a wake-up a little late (less than a spacing) does not push every later send back,
            # so the rate stays the paced one; after an idle spell the grid starts again from now.
            on_grid = now - self._next_global < spacing
            self._next_global = (self._next_global if on_grid else now) + spacing
        self._next_chat[chat_id] = now + self.limits.per_chat_seconds
        if chat_id < 0:
            sends = self._group_sends.setdefault(chat_id, deque())
            sends.append(now)
            while sends and sends[0] <= now - 60.0:
                sends.popleft()
            while len(sends) > self.limits.group_per_minute:
                sends.popleft()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)


@dataclass(frozen=True)
class DrainReport:
    sent: int = 0
    retried: int = 0
    blocked: int = 0
    failed: int = 0
    moved: int = 0


def backoff(attempts: int) -> timedelta:
    """How long a row waits after its ``attempts + 1``-th failed try: 5 s, 10 s, 20 s… up to BACKOFF_MAX."""
    return min(BACKOFF_MAX, BACKOFF_START * (2 ** min(max(0, attempts), _MAX_DOUBLINGS)))


async def drain(
    store: AlertStore,
    send: Transport,
    now: Callable[[], datetime],
    pacer: Pacer,
    *,
    limit: int = 10_000,
    concurrency: int = 16,
) -> DrainReport:
    """Send every due outbox row once (in id order per chat), recording each outcome as it happens.

    The store is only ever called from a thread of the drain's own, one call after another: each write
    waits for the store's lock, which a refresh holds for its whole pass (``alerts.engine.run_refresh``),
    and that wait must hold up neither the event loop (every command and button press) nor the shared
    threads the command answers run in. A row's outcome is recorded before its chat's next row is sent.
    """
    books = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
    loop = asyncio.get_running_loop()
    recording: set[asyncio.Future[Any]] = set()

    async def record(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # Shielded: a message Telegram accepted is marked sent even when the drain is cancelled (or a
        # worker fails) while the mark waits for the lock.
        written = loop.run_in_executor(books, functools.partial(call, *args, **kwargs))
        recording.add(written)
        written.add_done_callback(recording.discard)
        return await asyncio.shield(written)

    try:
        return await _drain(store, send, now, pacer, record, limit, concurrency)
    finally:
        # The drain ends once every outcome is on disk, so the next one (jobs take turns) never reads a
        # row that went out as still pending.
        if recording:
            await asyncio.wait(set(recording))
        books.shutdown(wait=False)


async def _drain(
    store: AlertStore,
    send: Transport,
    now: Callable[[], datetime],
    pacer: Pacer,
    record: Callable[..., Awaitable[Any]],
    limit: int,
    concurrency: int,
) -> DrainReport:
    rows: list[OutboxRow] = await record(store.outbox.pending, now(), limit)
    if not rows:
        return DrainReport()
    by_chat: dict[int, deque[OutboxRow]] = {}
    for row in rows:
        by_chat.setdefault(row.chat_id, deque()).append(row)
    counts = {"sent": 0, "retried": 0, "blocked": 0, "failed": 0, "moved": 0}
    chats = deque(by_chat)

    async def deliver(row: OutboxRow) -> bool:
        """Send one row; False when the rest of its chat's queue should wait for a later drain."""
        await pacer.wait_turn(row.chat_id)
        try:
            await send(row.chat_id, row.text)
        except RetryAfter as exc:
            pacer.pause(exc.seconds)
            await record(
                store.outbox.retry_later,
                row.id,
                now() + timedelta(seconds=exc.seconds),
                str(exc),
                count_attempt=False,
            )
            counts["retried"] += 1
            return False
        except Blocked:
            log.info("chat %s blocked the bot; deactivating it and pausing its rules", row.chat_id)
            await record(store.deactivate_chat, row.chat_id, now())
            counts["blocked"] += 1
            return False
        except Moved as exc:
            # The row (still pending, now under the new id) and the rest of the chat's queue go out in
            # the next drain, in their order among whatever the new id already had queued.
            log.info("chat %s became %s; its rules and queued alerts follow", row.chat_id, exc.new_chat_id)
            await record(store.move_chat, row.chat_id, exc.new_chat_id)
            counts["moved"] += 1
            return False
        except TemporaryFailure as exc:
            age = now() - row.created_at
            if age >= GIVE_UP_AFTER:
                reason = f"gave up after {_hours(age)} undelivered ({row.attempts + 1} attempts): {exc}"
                log.warning("outbox row %s for chat %s: %s", row.id, row.chat_id, reason)
                await record(store.outbox.give_up, row.id, reason)
                counts["failed"] += 1
            else:
                await record(store.outbox.retry_later, row.id, now() + backoff(row.attempts), str(exc))
                counts["retried"] += 1
            return False
        except PermanentFailure as exc:
            log.error("Telegram refused outbox row %s for chat %s: %s", row.id, row.chat_id, exc)
            await record(store.outbox.give_up, row.id, str(exc))
            counts["failed"] += 1
            return True
        await record(store.outbox.mark_sent, row.id, now())
        counts["sent"] += 1
        return True

    async def worker() -> None:
        while chats:
            chat_id = chats.popleft()
            queue = by_chat[chat_id]
            while queue:
                if not await deliver(queue.popleft()):
                    break

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(chats))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    return DrainReport(**counts)


def _hours(age: timedelta) -> str:
    return f"{age.total_seconds() / 3600:.1f} h"
