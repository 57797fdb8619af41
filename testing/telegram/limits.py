"""Telegram's flood limits on sends, as sliding windows: an excess send answers 429 with ``retry_after``."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from testing.telegram.records import JSON, ApiError


@dataclass(slots=True)
class _FloodLimits:
    global_per_second: int
    per_chat_per_second: int
    per_group_per_minute: int
    sends: deque[float] = field(default_factory=deque)
    chat_sends: dict[int | str, deque[float]] = field(default_factory=dict)
    group_sends: dict[int | str, deque[float]] = field(default_factory=dict)


class FloodControl:
    """Off until ``enforce_limits``; every send takes a slot in each window that applies to its chat."""

    def __init__(self) -> None:
        super().__init__()
        self.too_many_requests = 0
        self._limits: _FloodLimits | None = None

    def enforce_limits(
        self, *, global_per_second: int = 30, per_chat_per_second: int = 1, per_group_per_minute: int = 20
    ) -> None:
        self._limits = _FloodLimits(global_per_second, per_chat_per_second, per_group_per_minute)

    def disable_limits(self) -> None:
        self._limits = None

    def _take_send_slot(self, chat: JSON) -> None:
        limits = self._limits
        if limits is None:
            return
        now = time.monotonic()
        chat_id = chat["id"]
        windows = [
            (limits.sends, 1.0, limits.global_per_second),
            (limits.chat_sends.setdefault(chat_id, deque()), 1.0, limits.per_chat_per_second),
        ]
        if chat["type"] in ("group", "supergroup"):
            windows.append(
                (limits.group_sends.setdefault(chat_id, deque()), 60.0, limits.per_group_per_minute)
            )
        wait = 0.0
        for sends, span, allowed in windows:
            while sends and sends[0] <= now - span:
                sends.popleft()
            if len(sends) >= allowed:
                wait = max(wait, sends[0] + span - now)
        if wait > 0:
            self.too_many_requests += 1
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
        for sends, _span, _allowed in windows:
            sends.append(now)
