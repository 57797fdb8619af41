"""The command families and their registry: every command capgap answers, in the order of /help and of
Telegram's command menu.

Each family module declares ``COMMANDS`` and ``BUTTONS`` (``bot.answers.Family``) and imports neither this
package nor the dispatcher. The package gathers them into its own ``COMMANDS`` and ``BUTTONS``, which
``bot/handlers.py`` registers in one loop each.
"""

from __future__ import annotations

from bot.answers import Answer, Command, Family, Request
from bot.commands import (
    admin,
    alerts,
    basics,
    costs,
    history,
    privacy,
    quotes,
    standing,
    targets,
    valuation,
)

FAMILIES: tuple[Family, ...] = (
    basics,
    standing,
    quotes,
    costs,
    valuation,
    targets,
    alerts,
    history,
    privacy,
    admin,
)


def help_(request: Request) -> Answer:
    return basics.help_answer(request, COMMANDS)


HELP = Command("help", "Every command with an example", "/help", ("/help",), help_)
# /start and /help first, then each family's commands in the order of FAMILIES.
COMMANDS: tuple[Command, ...] = (
    *basics.COMMANDS,
    HELP,
    *(command for family in FAMILIES if family is not basics for command in family.COMMANDS),
)
BUTTONS = tuple(flow for family in FAMILIES for flow in family.BUTTONS)
_BY_NAME = {command.name: command for command in COMMANDS}


def registry() -> tuple[Command, ...]:
    """Every command, in the order /help and the menu show them."""
    return COMMANDS


def find(name: str) -> Command | None:
    return _BY_NAME.get(name)


def closest_command(name: str) -> str | None:
    """The command a mistyped name most likely meant ('stading' -> 'standing'), or None."""
    return basics.closest_command(name, COMMANDS)
