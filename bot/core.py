"""The command core: one place builds every answer, for Telegram handlers and the CLI alike.

A command is a plain function ``Request -> Answer``; it knows nothing of Telegram. ``bot/telegram.py``
turns an ``Answer`` into Bot API calls, ``bot/cli.py`` prints it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.services import Services

# Telegram's own ceilings; an answer over them is cut with a note rather than rejected.
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
GROUP_CHATS = ("group", "supergroup")
GROUP_ADMINS_ONLY = (
    "Only this group's administrators can change its alerts and settings. /alerts shows them to everyone."
)


class UsageError(ValueError):
    """The user's arguments are wrong; the message is the reply (with a usage example)."""


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # callback data, at most 64 bytes

    def __post_init__(self) -> None:
        if len(self.data.encode()) > MAX_CALLBACK_DATA:
            raise ValueError(f"callback data over {MAX_CALLBACK_DATA} bytes: {self.data!r}")


@dataclass(frozen=True)
class Answer:
    text: str  # Telegram HTML
    photo: bytes | None = None  # a PNG sent with ``text`` as its caption (or before it, if too long)
    photo_name: str = "chart.png"
    keyboard: tuple[tuple[Button, ...], ...] = ()


@dataclass(frozen=True)
class Request:
    command: str
    args: tuple[str, ...]
    services: Services
    chat_id: int = 0
    user_id: int = 0
    chat_type: str = "private"
    is_group_admin: bool = False


Handler = Callable[[Request], Answer | Awaitable[Answer]]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str  # one line for the command menu
    usage: str  # e.g. "/standing [period]"
    examples: tuple[str, ...]
    handler: Handler = field(repr=False)
    menu: bool = True  # shown in Telegram's command menu
    admin_only: bool = False  # CAPGAP_ADMINS only; everyone else is answered as if it did not exist
    group_admin_only: bool = False  # changes what a chat keeps: in groups, only its administrators
    # The answer depends only on the arguments and the market snapshot: one answer serves every chat
    # until the snapshot changes (``AnswerCache``).
    market_only: bool = False


def parse_command_line(text: str) -> tuple[str, tuple[str, ...]]:
    """'/standing@capgap_bot 10y' -> ('standing', ('10y',)). Raises UsageError if it is no command."""
    parts = text.strip().split()
    if not parts or not parts[0].startswith("/") or len(parts[0]) < 2:
        raise UsageError("Commands start with a slash, for example /standing. Send /help for the list.")
    name = parts[0][1:].split("@", 1)[0].lower()
    return name, tuple(parts[1:])


def registry() -> Sequence[Command]:
    """Every command, in the order /help and the menu show them."""
    from bot.commands import ALL_FAMILIES

    return tuple(command for family in ALL_FAMILIES for command in family.COMMANDS)


def find(name: str) -> Command | None:
    return next((c for c in registry() if c.name == name), None)


async def answer(request: Request) -> Answer:
    """Run the command named in ``request`` and return its answer, usage errors included."""
    command = find(request.command)
    if command is None or (command.admin_only and not request.services.is_admin(request.user_id)):
        return unknown(request.command)
    if command.group_admin_only and request.chat_type in GROUP_CHATS and not request.is_group_admin:
        return Answer(GROUP_ADMINS_ONLY)
    if command.market_only:
        return await request.services.answers.get(request, command)
    return await run(request, command.handler)


class AnswerCache:
    """Answers of market-only commands, shared by every chat until the market snapshot changes.

    A hundred chats asking /standing at once cost one computation: the first request builds the answer
    and the others await the same task. The key holds the latest NYSE session the data should have, so
    the "stale" warning in a footer appears as soon as the calendar says so.
    """

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._snapshot: object = None
        self._entries: dict[tuple[object, ...], asyncio.Future[Answer]] = {}

    def entries(self) -> list[tuple[object, ...]]:
        return list(self._entries)

    async def get(self, request: Request, command: Command) -> Answer:
        from market import calendar

        snapshot = request.services.market.snapshot
        if snapshot is not self._snapshot or len(self._entries) >= self.limit:
            self._entries.clear()
            self._snapshot = snapshot
        key = (
            command.name,
            tuple(a.lower() for a in request.args),
            calendar.last_closed_session(request.services.now()),
        )
        entry = self._entries.get(key)
        if entry is None or (entry.done() and entry.exception() is not None):
            entry = asyncio.ensure_future(run(request, command.handler))
            self._entries[key] = entry
        return await asyncio.shield(entry)


def unknown(name: str) -> Answer:
    from bot.commands.basics import closest_command
    from bot.format import esc

    guess = closest_command(name[:32])
    hint = f" Did you mean /{guess}?" if guess else ""
    return Answer(f"I don't know /{esc(name[:32])}.{hint} Send /help to see what I can do.")


async def run(request: Request, handler: Handler) -> Answer:
    """Call ``handler``; a ``UsageError`` becomes the reply. Any other exception propagates to be logged."""
    try:
        if inspect.iscoroutinefunction(handler):
            result: Any = await handler(request)
        else:
            # Answers read SQLite and crunch frames (a chart takes a tenth of a second): off the event loop,
            # so one slow answer never holds up the others or the scheduler.
            result = await asyncio.to_thread(handler, request)
    except UsageError as exc:
        return Answer(str(exc))
    return fit(result)


def fit(result: Answer) -> Answer:
    """Keep an answer within Telegram's message size: cut at a line end, close the tags left open."""
    if len(result.text) <= MAX_TEXT:
        return result
    note = "\n… (cut to fit Telegram's message size)"
    cut = result.text[: MAX_TEXT - len(note) - 100].rsplit("\n", 1)[0]
    open_tags: list[str] = []
    for closing, name in re.findall(r"<(/?)([a-z-]+)[^>]*>", cut):
        if not closing:
            open_tags.append(name)
        elif open_tags and open_tags[-1] == name:
            open_tags.pop()
    cut += "".join(f"</{name}>" for name in reversed(open_tags))
    return Answer(cut + note, result.photo, result.photo_name, result.keyboard)
