"""The door every update passes first: which chats may use the bot, how fast, and how much they may send.

``register`` adds one handler in PTB group -1, ahead of every command family. Raising
``ApplicationHandlerStop`` there ends the update's handling, so a refused or flooding chat reaches no
handler that could answer it at length or store anything about it. The guard itself keeps only memory
(what it refused today, recent command times), never a row in the database.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from telegram import Update
from telegram.ext import ApplicationHandlerStop, TypeHandler

if TYPE_CHECKING:
    from bot.context import App, Context

log = logging.getLogger(__name__)

GUARD_GROUP = -1
MAX_INPUT_CHARS = 512  # the longest command capgap understands is an alert rule of at most 200 characters
# /alert takes several rules, one a line (what /export gives back): as long as Telegram lets a message be.
MAX_PASTE_CHARS = 4096
_PASTE = re.compile(r"/alert(?:@\w+)?(?:\s|$)", re.IGNORECASE)
FLOOD_WINDOW = 60.0  # seconds over which commands, and button presses, are counted
# Button presses on the bot's own messages have a budget of their own, this many times the commands': a
# user paging through periods presses every second or two, and each press costs one edit of a message
# already sent (at the default 20 commands, 60 presses a minute: one a second, Telegram's own pace for a
# chat).
PRESSES_PER_COMMAND = 3
QUIET_SECONDS = 60.0  # how long a flooding chat is ignored after its one warning
MAX_TRACKED_CHATS = 10_000  # memory bound: beyond it, chats not seen within the window are forgotten

REFUSAL = (
    "Sorry, this capgap bot is private: it only answers the chats its owner has allowed. "
    "Nothing you send here is kept."
)
SLOW_DOWN = "Slow down, please: that is more than {limit} {what} a minute. I'll listen again in a minute."
TOO_LONG = "That message is too long for me ({length:,} characters): a command fits in {limit}."


class Verdict(enum.Enum):
    PASS = "pass"
    REFUSE = "refuse"  # not an allowed chat: say so (once a day)
    SLOW_DOWN = "slow down"  # just went over the flood limit: say so (once)
    IGNORE = "ignore"  # already told: answer nothing


def _utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass
class Guard:
    """The allow-list and the per-chat flood limits; ``clock`` (seconds) and ``today`` are injectable.

    Commands and button presses are counted apart, each against its own budget a minute; a chat over
    either is ignored for QUIET_SECONDS (commands and presses alike).
    """

    allowed_chats: frozenset[int] | None  # None: every chat
    admins: frozenset[int] = frozenset()  # their private chats are always allowed
    per_minute: int = 20  # commands; 0: no flood limit
    presses_per_minute: int | None = None  # button presses; None: PRESSES_PER_COMMAND × per_minute
    clock: Callable[[], float] = time.monotonic
    today: Callable[[], date] = _utc_today
    _refused_on: dict[int, date] = field(default_factory=dict)
    _recent: dict[int, deque[float]] = field(default_factory=dict)
    _presses: dict[int, deque[float]] = field(default_factory=dict)
    _quiet_until: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.presses_per_minute is None:
            self.presses_per_minute = PRESSES_PER_COMMAND * self.per_minute

    def allows(self, chat_id: int) -> bool:
        # A user's private chat has the user's id, so an admin's own chat is always open to them.
        return self.allowed_chats is None or chat_id in self.allowed_chats or chat_id in self.admins

    def limit(self, *, press: bool) -> int:
        return (self.presses_per_minute or 0) if press else self.per_minute

    def admit(self, chat_id: int, *, press: bool = False) -> Verdict:
        """Judge one command, or with ``press`` one press of a button on the bot's message, from ``chat_id``."""
        if not self.allows(chat_id):
            return self._refuse(chat_id)
        limit = self.limit(press=press)
        if limit <= 0:
            return Verdict.PASS
        now = self.clock()
        if self._quiet_until.get(chat_id, 0.0) > now:
            return Verdict.IGNORE
        self._quiet_until.pop(chat_id, None)
        counted = self._presses if press else self._recent
        recent = counted.get(chat_id)
        if recent is None:
            self._forget_idle(counted, now)
            recent = counted[chat_id] = deque()
        while recent and recent[0] <= now - FLOOD_WINDOW:
            recent.popleft()
        recent.append(now)
        if len(recent) > limit:
            self._quiet_until[chat_id] = now + QUIET_SECONDS
            recent.clear()
            return Verdict.SLOW_DOWN
        return Verdict.PASS

    def _refuse(self, chat_id: int) -> Verdict:
        today = self.today()
        if self._refused_on.get(chat_id) == today:
            return Verdict.IGNORE
        if len(self._refused_on) >= MAX_TRACKED_CHATS:
            # Yesterday's refusals go first; under a swarm of strangers in one day, the earliest half too
            # (they may hear the refusal twice that day, which beats unbounded memory).
            kept = [(c, d) for c, d in self._refused_on.items() if d == today]
            self._refused_on = dict(kept[-(MAX_TRACKED_CHATS // 2) :])
        self._refused_on[chat_id] = today
        return Verdict.REFUSE

    @staticmethod
    def _forget_idle(counted: dict[int, deque[float]], now: float) -> None:
        if len(counted) < MAX_TRACKED_CHATS:
            return
        for chat_id in [c for c, times in counted.items() if not times or times[-1] <= now - FLOOD_WINDOW]:
            del counted[chat_id]


def addressed_to_bot(update: Update) -> bool:
    """Commands and button presses, and anything in a private chat: what the bot would answer.

    Group chatter that reaches the bot (when its privacy mode is off) is neither counted nor refused.
    """
    if update.callback_query is not None:
        return True
    message = update.message
    if message is None or message.text is None:
        return False
    return message.chat.type == "private" or message.text.startswith("/")


async def screen(update: object, context: Context) -> None:
    """Let the update through, or answer it briefly (or not at all) and stop it here."""
    if isinstance(update, Update) and update.inline_query is not None:
        screen_inline(update, context.bot_data.guard)
        return
    if not isinstance(update, Update) or update.effective_chat is None:
        raise ApplicationHandlerStop  # nothing else capgap answers comes without a chat
    guard = context.bot_data.guard
    chat_id = update.effective_chat.id
    if not addressed_to_bot(update):
        if not guard.allows(chat_id):
            raise ApplicationHandlerStop
        return
    # A callback query with a chat is a press on a message the bot sent (the only ones with its buttons).
    press = update.callback_query is not None
    verdict = guard.admit(chat_id, press=press)
    if verdict is Verdict.PASS:
        text = update.message.text if update.message is not None else None
        limit = MAX_PASTE_CHARS if text is not None and _PASTE.match(text) else MAX_INPUT_CHARS
        if text is not None and len(text) > limit:
            await context.bot.send_message(chat_id, TOO_LONG.format(length=len(text), limit=limit))
            raise ApplicationHandlerStop
        return
    if update.callback_query is not None:
        await update.callback_query.answer()  # stops the spinner on the button; says nothing more
    if verdict is Verdict.REFUSE:
        log.info("chat %s is not allowed: refused", chat_id, extra={"chat_id": chat_id})
        await context.bot.send_message(chat_id, REFUSAL)
    elif verdict is Verdict.SLOW_DOWN:
        what = "button presses" if press else "commands"
        limit = guard.limit(press=press)
        log.info(
            "chat %s sent more than %d %s a minute: ignored for %d s",
            chat_id,
            limit,
            what,
            QUIET_SECONDS,
            extra={"chat_id": chat_id},
        )
        await context.bot.send_message(chat_id, SLOW_DOWN.format(limit=limit, what=what))
    raise ApplicationHandlerStop


def screen_inline(update: Update, guard: Guard) -> None:
    """An inline query comes from a user, in no chat the bot is in: it is judged as that user's private
    chat (a private bot answers only its allowed users inline too), counted as a button press (one arrives
    per keystroke). A query refused or over the limit is left unanswered: the bot cannot write to a user
    who never started it, and Telegram shows no results."""
    assert update.inline_query is not None
    if guard.admit(update.inline_query.from_user.id, press=True) is not Verdict.PASS:
        raise ApplicationHandlerStop


def register(application: App) -> None:
    """The guard (``bot_data.guard``, built in ``build_app``) ahead of every other handler."""
    application.add_handler(TypeHandler(Update, screen), group=GUARD_GROUP)
