"""Inline mode: ``@bot standing 10y`` or ``@bot price iwm`` typed in any chat, answered by the command core.

Only market answers are served inline (``Command.market_only``): they are the same for every chat, come
from the shared answer cache (a query arrives with each keystroke, and the same text costs one
computation per market snapshot), and need nothing the bot keeps about a chat. Anything else, and input
that is no such command, gets the guide: what to type. ``bot/handlers.py`` turns the answer into an inline
result.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from bot import commands, core
from bot.answers import Answer, Command, Request
from bot.format import esc

if TYPE_CHECKING:
    from bot.services import Services

# What the guide offers, one example per kind of answer (each a market command with its arguments).
EXAMPLES = ("standing 10y", "price iwm", "chart 5y", "gap", "target 3000", "etf 25000 20")


def served() -> tuple[Command, ...]:
    """The commands inline mode answers: market answers everyone may ask for."""
    return tuple(c for c in commands.registry() if c.market_only and not c.admin_only)


def guide(word: str = "") -> Answer:
    """What to type after the bot's name; with ``word``, why that was not it (and the closest name)."""
    names = [c.name for c in served()]
    lines = []
    if word:
        close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
        hint = f" Did you mean <b>{close[0]}</b>?" if close else ""
        lines.append(f"I don't answer “{esc(word[:32])}” inline.{hint}")
    examples = ", ".join(f"<code>{e}</code>" for e in EXAMPLES)
    lines.append(f"Type a question after my name: {examples}. Inline I answer {esc(', '.join(names))}.")
    if word:
        lines.append("Alerts and settings are per chat: write to me directly for those.")
    return Answer("\n".join(lines), refusal=True)


async def inline_answer(services: Services, user_id: int, query: str) -> Answer:
    """The answer to the inline query ``query`` ('standing 10y', '/price iwm'): the command's own answer,
    built by the core as for a message, or the guide."""
    words = query.split()
    if not words:
        return guide()
    name = words[0].removeprefix("/").split("@", 1)[0].lower()
    command = commands.find(name)
    if command is None or not command.market_only or command.admin_only:  # what ``served`` leaves out
        return guide(name)
    request = Request(name, tuple(words[1:]), services, user_id=user_id, text=" ".join(words[1:]))
    return await core.answer(request)
