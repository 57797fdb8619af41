"""The calls the bot made, recorded as answered and indexed so ``wait_for`` hands each out at most once."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from testing.telegram.records import JSON, ApiCall


class _CallIndex:
    """Calls in arrival order, with a mark before which every call has been handed out."""

    __slots__ = ("calls", "start")

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.start = 0


class CallLog:
    """Every answered request, by method and by chat; ``wait_for`` waits on an event each new call sets."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[ApiCall] = []
        self._call_seq = itertools.count()
        self._calls_signal = asyncio.Event()
        self._handed_out: set[int] = set()
        self._calls_by_method: dict[str, _CallIndex] = {}
        self._calls_by_chat: dict[int | str, _CallIndex] = {}
        self._calls_not_polling = _CallIndex()

    def calls_to(self, chat_id: int | str) -> list[ApiCall]:
        index = self._calls_by_chat.get(chat_id)
        return list(index.calls) if index else []

    async def wait_for(
        self,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        chat_id: int | str | None = None,
        method: str | None = None,
        count: int = 1,
        ok: bool | None = True,
        timeout: float = 10.0,  # noqa: ASYNC109 - how long the bot may take, part of the test-facing API
    ) -> list[ApiCall]:
        """Wait until ``count`` matching calls, not returned by an earlier wait_for, have arrived."""
        wanted_method = method.lower() if method else None
        # A chat's calls are usually far fewer than a method's, so waiting per chat stays cheap after a
        # broadcast to thousands of chats.
        if chat_id is not None:
            index = self._calls_by_chat.setdefault(chat_id, _CallIndex())
        elif wanted_method:
            index = self._calls_by_method.setdefault(wanted_method, _CallIndex())
        else:
            index = self._calls_not_polling

        def matches(call: ApiCall) -> bool:
            return (
                (chat_id is None or call.chat_id == chat_id)
                and (wanted_method is None or call.method.lower() == wanted_method)
                and (ok is None or call.ok == ok)
                and (predicate is None or predicate(call))
            )

        found: list[ApiCall] = []
        position = index.start
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while index.start < len(index.calls) and index.calls[index.start].seq in self._handed_out:
                        index.start += 1
                    position = max(position, index.start)
                    while position < len(index.calls) and len(found) < count:
                        call = index.calls[position]
                        position += 1
                        if call.seq not in self._handed_out and matches(call):
                            # Reserved now so that a concurrent wait_for cannot return it too.
                            self._handed_out.add(call.seq)
                            found.append(call)
                    if len(found) >= count:
                        return found
                    await self._calls_signal.wait()
        except TimeoutError:
            self._handed_out.difference_update(call.seq for call in found)
            raise AssertionError(self._describe_timeout(found, count, chat_id, method, ok, timeout)) from None

    def _describe_timeout(
        self,
        found: list[ApiCall],
        count: int,
        chat_id: object,
        method: str | None,
        ok: bool | None,
        timeout: float,
    ) -> str:
        criteria = ", ".join(
            f"{name}={value!r}"
            for name, value in (("method", method), ("chat_id", chat_id), ("ok", ok))
            if value is not None
        )
        unclaimed = [call for call in self._calls_not_polling.calls[-30:] if call.seq not in self._handed_out]
        lines = [f"waited {timeout}s for {count} call(s) ({criteria or 'any'}), {len(found)} matched."]
        if unclaimed:
            lines.append("Calls that arrived and no wait_for took (latest 30, getUpdates left out):")
            lines.extend(f"  {call.summary()}" for call in unclaimed)
        else:
            lines.append("No call besides getUpdates arrived that an earlier wait_for had not taken.")
        return "\n".join(lines)

    def _record(self, method: str, params: JSON, status: int, body: JSON) -> None:
        chat_id = params.get("chat_id")
        call = ApiCall(next(self._call_seq), method, params, time.monotonic(), status, body, chat_id)
        self.calls.append(call)
        self._calls_by_method.setdefault(method.lower(), _CallIndex()).calls.append(call)
        if chat_id is not None:
            self._calls_by_chat.setdefault(chat_id, _CallIndex()).calls.append(call)
        if method != "getUpdates":
            self._calls_not_polling.calls.append(call)
        self._calls_signal.set()
        self._calls_signal = asyncio.Event()
