"""How fast capgap calls the Bot API, and what a call does when Telegram answers "retry after N s".

Every call but getUpdates passes ``Limiter.process_request`` (PTB's ``BaseRateLimiter`` hook). Throttling is
PTB's: calls naming a chat share one budget a second, calls to a group or channel also one a minute.

A 429 is handled where it is understood:
- A reply to a command or a button (any call made without ``rate_limit_args``) waits the ``retry_after``
  Telegram gave and goes out then, up to ``REPLY_RETRIES`` times and never for longer than
  ``LONGEST_WAIT`` at once. Only that call waits: the rest of the bot goes on (PTB's ``AIORateLimiter``
  halts every call instead, and releases the halt early when another call finishes, PTB #4003 and #5338).
- The outbox (``bot.transport``) passes ``NO_RETRY``: the 429 reaches it at once, and it postpones the row
  and pauses its own sending (``alerts.delivery``), so nothing is retried twice or held up here.

A 429 is Telegram's ordinary flow control, not a fault: it is logged at INFO, and at WARNING when a reply
is given up on, never with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

REPLY_RETRIES = 3
# Telegram asks for seconds (one a second per chat, 20 a minute per group); a wait of minutes is a flood
# ban, and a reply that late answers nothing the user still waits for.
LONGEST_WAIT = 60.0
# Beyond this many group budgets, the ones with all their capacity back are forgotten.
GROUPS_KEPT = 512

Result = bool | dict[str, Any] | list[dict[str, Any]]


@dataclass(frozen=True)
class Retries:
    """A call's ``rate_limit_args``: how many 429s it waits out before the error reaches its caller."""

    times: int


NO_RETRY = Retries(0)


def retry_after_seconds(exc: RetryAfter) -> float:
    wait = exc.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


class Limiter(BaseRateLimiter[Retries]):
    """``per_second`` (0: unthrottled) over every chat, ``group_per_minute`` for each group; ``sleep`` is
    injectable so tests can see the waits without taking them."""

    def __init__(
        self,
        per_second: float,
        group_per_minute: float = 20,
        *,
        retries: int = REPLY_RETRIES,
        longest_wait: float = LONGEST_WAIT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.retries = retries
        self.longest_wait = longest_wait
        self.sleep = sleep
        self._overall = AsyncLimiter(per_second, 1) if per_second > 0 else None
        self._group_per_minute = group_per_minute
        self._groups: dict[int | str, AsyncLimiter] = {}

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Retries | None,
    ) -> Result:
        retries = self.retries if rate_limit_args is None else rate_limit_args.times
        chat_id = data.get("chat_id")
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._throttle(chat_id):
                    return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if retries == 0:
                    raise  # the caller handles it (the outbox)
                if attempt > retries or wait > self.longest_wait:
                    log.warning(
                        "Telegram asks to wait %.0f s before %s to chat %s (try %d of %d); giving up",
                        wait,
                        endpoint,
                        chat_id,
                        attempt,
                        retries + 1,
                    )
                    raise
                log.info(
                    "Telegram asks to wait %.0f s before %s to chat %s; waiting", wait, endpoint, chat_id
                )
                await self.sleep(wait)

    @contextlib.asynccontextmanager
    async def _throttle(self, chat_id: object) -> AsyncIterator[None]:
        if chat_id is None:  # answerCallbackQuery, setMyCommands…: no message to a chat
            yield
            return
        group = self._group(chat_id)
        async with contextlib.AsyncExitStack() as stack:
            if group is not None:
                await stack.enter_async_context(group)
            if self._overall is not None:
                await stack.enter_async_context(self._overall)
            yield

    def _group(self, chat_id: object) -> AsyncLimiter | None:
        """The budget of a group or channel: a negative id, or an @username (only those have one)."""
        if self._group_per_minute <= 0:
            return None
        with contextlib.suppress(TypeError, ValueError):
            chat_id = int(chat_id)  # type: ignore[call-overload]
        if not (isinstance(chat_id, str) or (isinstance(chat_id, int) and chat_id < 0)):
            return None
        if chat_id not in self._groups and len(self._groups) >= GROUPS_KEPT:
            for key in [k for k, v in self._groups.items() if v.has_capacity(v.max_rate)]:
                del self._groups[key]
        limiter = self._groups.get(chat_id)
        if limiter is None:
            limiter = self._groups[chat_id] = AsyncLimiter(self._group_per_minute, 60)
        return limiter
