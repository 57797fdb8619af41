"""Fault injection: error answers on demand (``fail``), requests held unanswered (``hold``), and chats
that blocked the bot (``block``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from testing.telegram.records import BLOCKED, ApiError

_DEFAULT_DESCRIPTIONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass(slots=True)
class _Fault:
    method: str
    status: int
    remaining: int | None
    chat_id: int | str | None
    retry_after: int | None
    description: str
    migrate_to_chat_id: int | None = None


class FaultInjection:
    """The faults a test has asked for; the emulator consults them before it serves a request."""

    def __init__(self) -> None:
        super().__init__()
        self._faults: list[_Fault] = []
        self._holds: list[tuple[str, int | None]] = []
        self._release = asyncio.Event()
        self._held_signal = asyncio.Event()
        self.held = 0
        self._blocked: set[int | str] = set()

    def fail(
        self,
        method: str,
        status: int,
        *,
        times: int | None = 1,
        chat_id: int | str | None = None,
        retry_after: int | None = None,
        description: str | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (for ``chat_id`` if given) with an error."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if status == 429
                else _DEFAULT_DESCRIPTIONS.get(status)
            )
        if description is None:
            raise ValueError(f"give a description for status {status}")
        self._faults.append(
            _Fault(method.lower(), status, times, chat_id, retry_after, description, migrate_to_chat_id)
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def hold(self, method: str, *, chat_id: int | None = None) -> None:
        """Keep matching requests waiting, unanswered, until ``release()``: a bot can be killed mid-request."""
        self._holds.append((method.lower(), chat_id))

    async def wait_held(self, count: int = 1, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until ``count`` requests are being held."""
        try:
            async with asyncio.timeout(timeout):
                while self.held < count:
                    await self._held_signal.wait()
                    self._held_signal.clear()
        except TimeoutError:
            raise AssertionError(f"{self.held} request(s) held after {timeout} s, wanted {count}") from None

    def release(self) -> None:
        """Let held requests go on (those whose client disconnected are dropped) and hold no more."""
        self._holds.clear()
        self._release.set()
        self._release = asyncio.Event()

    async def _wait_if_held(self, request: web.Request, method: str, chat_id: object) -> bool:
        if not any(m == method.lower() and (c is None or c == chat_id) for m, c in self._holds):
            return True
        release = self._release
        self.held += 1
        self._held_signal.set()
        try:
            await release.wait()
        finally:
            self.held -= 1
        transport = request.transport
        return transport is not None and not transport.is_closing()

    def block(self, chat_id: int | str) -> None:
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int | str) -> None:
        self._blocked.discard(chat_id)

    def _inject_faults(self, method: str, chat_id: object) -> None:
        if not self._faults:
            return
        lowered = method.lower()
        for fault in self._faults:
            if fault.method == lowered and (fault.chat_id is None or fault.chat_id == chat_id):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                raise ApiError(
                    fault.status,
                    fault.description,
                    retry_after=fault.retry_after,
                    migrate_to_chat_id=fault.migrate_to_chat_id,
                )
