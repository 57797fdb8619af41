"""What a command is and what it answers, in capgap's own terms: no Telegram, no dispatcher.

Every command family imports these; ``bot/core.py`` runs a command, ``bot/handlers.py`` turns an
``Answer`` into Bot API calls and ``bot/cli.py`` prints it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.services import Services

# Telegram's ceilings for a caption and a button's data (a message's text: ``alerts.messages.MAX_MESSAGE``).
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
    data: str  # callback data, at most 64 bytes; with ``share``, the inline query the button starts
    # A share button (Telegram's switch_inline_query): the user picks a chat and the bot's inline mode
    # answers ``@bot <data>`` there (bot/inline.py). Pressing it sends nothing to the bot.
    share: bool = False

    def __post_init__(self) -> None:
        if len(self.data.encode()) > MAX_CALLBACK_DATA:
            raise ValueError(f"callback data over {MAX_CALLBACK_DATA} bytes: {self.data!r}")


@dataclass(frozen=True)
class Answer:
    text: str  # Telegram HTML
    photo: bytes | None = None  # a PNG sent with ``text`` as its caption (or before it, if too long)
    photo_name: str = "chart.png"
    keyboard: tuple[tuple[Button, ...], ...] = ()
    # The reply to a ``UsageError``: what to type instead, not an answer worth sharing.
    refusal: bool = False


@dataclass(frozen=True)
class Request:
    command: str
    args: tuple[str, ...]
    services: Services
    # What followed the command as typed, line breaks kept (``args`` is it split on any whitespace): a
    # command that takes several lines (/alert pasted from /export) reads this.
    text: str = ""
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
    # until the snapshot changes (``core.AnswerCache``).
    market_only: bool = False


@dataclass(frozen=True)
class ButtonFlow:
    """Buttons whose callback data is ``prefix:<data>``: pressing one redraws its message with
    ``build(request, data)``. The data comes from the client and is never trusted: ``build`` validates it
    like typed input. With ``group_admin_only``, in groups only administrators may press."""

    prefix: str
    build: Callable[[Request, str], Answer] = field(repr=False)
    group_admin_only: bool = False


class Family(Protocol):
    """A module of ``bot/commands/``: the commands it answers and the buttons it puts under them."""

    @property
    def COMMANDS(self) -> Sequence[Command]: ...

    @property
    def BUTTONS(self) -> Sequence[ButtonFlow]: ...


def parse_command_line(text: str) -> tuple[str, tuple[str, ...]]:
    """'/standing@capgap_bot 10y' -> ('standing', ('10y',)). Raises UsageError if it is no command."""
    parts = text.strip().split()
    if not parts or not parts[0].startswith("/") or len(parts[0]) < 2:
        raise UsageError("Commands start with a slash, for example /standing. Send /help for the list.")
    name = parts[0][1:].split("@", 1)[0].lower()
    return name, tuple(parts[1:])


def after_command(text: str) -> str:
    """What follows the command in ``text``, line breaks kept: '/alert a\nb' -> 'a\nb'."""
    parts = text.strip().split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""
