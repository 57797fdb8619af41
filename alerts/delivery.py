"""Drains the outbox to Telegram (through a ``Transport`` the bot supplies): at least once, paced, honest.

A row is marked sent only after Telegram accepted it. A crash between Telegram accepting a message and
the commit that marks it sent means that one message is sent again after the restart: the only window
where a duplicate is possible, and a deliberate one (a lost alert is worse than a repeated one).

Pacing keeps under Telegram's limits: about 30 messages a second overall, one a second per chat, 20 a
minute per group. ``RetryAfter`` postpones the row (and, as Telegram asks, all sending) for the time
given; network errors and 5xx back off exponentially; ``Blocked`` deactivates the chat and pauses its
rules rather than retrying forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.store import AlertStore, OutboxRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_START = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=30)


class Blocked(Exception):
    """The chat cannot be written to any more (the user blocked the bot, or the chat is gone)."""


class RetryAfter(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


class TemporaryFailure(Exception):
    """A network error or a 5xx: worth trying again later."""


class PermanentFailure(Exception):
    """Telegram refused the message itself (a 400): retrying the same text cannot help."""


Transport = Callable[[int, str], Awaitable[None]]


@dataclass
class Limits:
    per_second: float = 30.0  # all chats together
    per_chat_seconds: float = 1.0  # at most one message a second to one chat
    group_per_minute: int = 20


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
            self._next_global = max(now, self._next_global) + 1.0 / self.limits.per_second
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


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF_MAX, BACKOFF_START * (2 ** max(0, attempts)))


async def drain(
    store: AlertStore,
    send: Transport,
    now: Callable[[], datetime],
    pacer: Pacer,
    *,
    limit: int = 10_000,
    concurrency: int = 16,
) -> DrainReport:
    """Send every due outbox row once (in id order per chat), recording each outcome as it happens."""
    rows = await asyncio.to_thread(store.pending, now(), limit)
    if not rows:
        return DrainReport()
    by_chat: dict[int, deque[OutboxRow]] = {}
    for row in rows:
        by_chat.setdefault(row.chat_id, deque()).append(row)
    counts = {"sent": 0, "retried": 0, "blocked": 0, "failed": 0}
    chats = deque(by_chat)

    async def deliver(row: OutboxRow) -> bool:
        """Send one row; False when the rest of its chat's queue should wait for a later drain."""
        await pacer.wait_turn(row.chat_id)
        try:
            await send(row.chat_id, row.text)
        except RetryAfter as exc:
            pacer.pause(exc.seconds)
            store.retry_later(row.id, now() + timedelta(seconds=exc.seconds), str(exc), count_attempt=False)
            counts["retried"] += 1
            return False
        except Blocked:
            log.info("chat %s blocked the bot; deactivating it and pausing its rules", row.chat_id)
            store.deactivate_chat(row.chat_id, now())
            counts["blocked"] += 1
            return False
        except TemporaryFailure as exc:
            if row.attempts + 1 >= MAX_ATTEMPTS:
                store.give_up(row.id, f"gave up after {MAX_ATTEMPTS} attempts: {exc}")
                counts["failed"] += 1
            else:
                store.retry_later(row.id, now() + backoff(row.attempts), str(exc))
                counts["retried"] += 1
            return False
        except PermanentFailure as exc:
            log.error("Telegram refused outbox row %s for chat %s: %s", row.id, row.chat_id, exc)
            store.give_up(row.id, str(exc))
            counts["failed"] += 1
            return True
        store.mark_sent(row.id, now())
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
