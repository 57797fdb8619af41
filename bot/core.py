"""The command core: one place runs every command, for Telegram handlers and the CLI alike.

A command is a plain function ``Request -> Answer`` (``bot/answers.py``); it knows nothing of Telegram.
``bot/handlers.py`` turns an ``Answer`` into Bot API calls, ``bot/cli.py`` prints it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from datetime import date, datetime
from typing import Any

from alerts.messages import fit_text
from bot import commands
from bot.answers import (
    GROUP_ADMINS_ONLY,
    GROUP_CHATS,
    Answer,
    Button,
    Command,
    Handler,
    Request,
    UsageError,
)
from bot.format import esc
from market import calendar

# A share button's query rides in its data (at most 64 bytes, as any button's); nothing capgap answers
# inline needs more than a command and a period.
MAX_SHARED_QUERY = 64


async def answer(request: Request) -> Answer:
    """Run the command named in ``request`` and return its answer, usage errors included."""
    command = commands.find(request.command)
    if command is None or (command.admin_only and not request.services.is_admin(request.user_id)):
        return unknown(request.command)
    if command.group_admin_only and request.chat_type in GROUP_CHATS and not request.is_group_admin:
        return Answer(GROUP_ADMINS_ONLY)
    if command.market_only:
        return shareable(command, request.args, await request.services.answers.get(request, command))
    return await run(request, command.handler)


def shareable(command: Command | None, args: tuple[str, ...], answer: Answer) -> Answer:
    """``answer`` with a share button under it when it is a market answer (the same for every chat, so
    the bot's inline mode can give it in any chat: ``@bot standing 10y``); refusals and answers about a
    chat's own alerts get none."""
    if command is None or not command.market_only or answer.refusal:
        return answer
    query = " ".join((command.name, *args))
    if len(query.encode()) > MAX_SHARED_QUERY:
        return answer
    share = (Button("↗ Share", query, share=True),)
    return dataclasses.replace(answer, keyboard=(*answer.keyboard, share))


class AnswerCache:
    """Answers of market-only commands, shared by every chat until the market snapshot changes.

    A hundred chats asking /standing at once cost one computation: the first request builds the answer
    and the others await the same task. The key holds the latest NYSE session the data should have, so
    the "stale" warning in a footer appears as soon as the calendar says so; that session is asked of the
    calendar once per span between two closes, not once per request.
    """

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._snapshot: object = None
        self._entries: dict[tuple[object, ...], asyncio.Future[Answer]] = {}
        self._closed: calendar.ClosedSpan | None = None

    def entries(self) -> list[tuple[object, ...]]:
        return list(self._entries)

    def last_closed_session(self, now: datetime) -> date:
        if self._closed is None or not self._closed.holds(now):
            self._closed = calendar.closed_span(now)
        return self._closed.session

    async def get(self, request: Request, command: Command) -> Answer:
        snapshot = request.services.market.snapshot
        if snapshot is not self._snapshot or len(self._entries) >= self.limit:
            self._entries.clear()
            self._snapshot = snapshot
        key = (
            command.name,
            tuple(a.lower() for a in request.args),
            self.last_closed_session(request.services.now()),
        )
        entry = self._entries.get(key)
        if entry is None or (entry.done() and entry.exception() is not None):
            entry = asyncio.ensure_future(run(request, command.handler))
            self._entries[key] = entry
        return await asyncio.shield(entry)


def unknown(name: str) -> Answer:
    guess = commands.closest_command(name[:32])
    hint = f" Did you mean /{guess}?" if guess else ""
    return Answer(f"I don't know /{esc(name[:32])}.{hint} Send /help to see what I can do.", refusal=True)


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
        return Answer(str(exc), refusal=True)
    return fit(result)


def fit(result: Answer) -> Answer:
    """Keep an answer within Telegram's message size (``fit_text``): cut, with a note, not rejected."""
    text = fit_text(result.text)
    return result if text is result.text else dataclasses.replace(result, text=text)
