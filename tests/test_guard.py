"""bot/guard.py: the allow-list, flood protection and input length, in front of every handler.

The unit tests drive ``Guard`` with a hand-moved clock; the end-to-end ones send updates through the real
Application (``DirectBot``: each update is handled to the end before the test goes on, so "no reply" is
a fact, not a timeout).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta

import pytest

from bot.guard import (
    MAX_INPUT_CHARS,
    MAX_PASTE_CHARS,
    MAX_TRACKED_CHATS,
    PRESSES_PER_COMMAND,
    QUIET_SECONDS,
    REFUSAL,
    Guard,
    Verdict,
)
from tests.conftest import DirectBot

ALLOWED = 501
STRANGER = 777
ADMIN = 42


class Ticks:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Days:
    def __init__(self) -> None:
        self.day = date(2024, 1, 18)

    def __call__(self) -> date:
        return self.day


# --- Guard, by itself -------------------------------------------------------------------------------


def test_without_an_allow_list_every_chat_passes() -> None:
    guard = Guard(None, per_minute=0)
    assert [guard.admit(chat) for chat in (1, -100123, STRANGER)] == [Verdict.PASS] * 3


def test_a_stranger_is_refused_once_a_day_then_ignored() -> None:
    days = Days()
    guard = Guard(frozenset({ALLOWED}), per_minute=0, today=days)
    assert guard.admit(STRANGER) is Verdict.REFUSE
    assert guard.admit(STRANGER) is Verdict.IGNORE
    assert guard.admit(STRANGER) is Verdict.IGNORE
    days.day += timedelta(days=1)
    assert guard.admit(STRANGER) is Verdict.REFUSE
    assert guard.admit(ALLOWED) is Verdict.PASS


def test_the_admins_own_chats_are_always_allowed() -> None:
    guard = Guard(frozenset({ALLOWED}), admins=frozenset({ADMIN}), per_minute=0)
    assert guard.admit(ADMIN) is Verdict.PASS
    assert guard.admit(-ADMIN) is Verdict.REFUSE  # a group is not the admin's own chat


def test_an_empty_allow_list_lets_only_the_admins_in() -> None:
    guard = Guard(frozenset(), admins=frozenset({ADMIN}), per_minute=0)
    assert guard.admit(ADMIN) is Verdict.PASS
    assert guard.admit(ALLOWED) is Verdict.REFUSE


def test_the_command_over_the_limit_gets_one_warning_then_silence_for_a_while() -> None:
    ticks = Ticks()
    guard = Guard(None, per_minute=5, clock=ticks)
    verdicts = []
    for _ in range(8):
        verdicts.append(guard.admit(ALLOWED))
        ticks.now += 1
    assert verdicts == [Verdict.PASS] * 5 + [Verdict.SLOW_DOWN] + [Verdict.IGNORE] * 2
    assert guard.admit(ALLOWED + 1) is Verdict.PASS  # one chat's flood is its own
    ticks.now += QUIET_SECONDS
    assert guard.admit(ALLOWED) is Verdict.PASS


def test_commands_spread_over_more_than_a_minute_are_never_a_flood() -> None:
    ticks = Ticks()
    guard = Guard(None, per_minute=5, clock=ticks)
    for _ in range(50):
        assert guard.admit(ALLOWED) is Verdict.PASS
        ticks.now += 12.5  # five a minute, exactly the limit


def test_paging_through_periods_with_buttons_for_ten_minutes_is_never_a_flood() -> None:
    """The default limits: a press every two seconds (30 a minute, past the 20 commands) and a command
    every half minute, for ten minutes: all 320 admitted."""
    ticks = Ticks()
    guard = Guard(None, clock=ticks)
    verdicts = []
    for second in range(0, 600, 2):
        if second % 30 == 0:
            verdicts.append(guard.admit(ALLOWED))
        verdicts.append(guard.admit(ALLOWED, press=True))
        ticks.now += 2
    assert len(verdicts) == 320 and set(verdicts) == {Verdict.PASS}


def test_button_presses_have_a_budget_of_their_own_three_times_the_commands() -> None:
    """20 commands a minute and, counted apart, 60 presses: the 61st press in a minute gets the one warning,
    and then the chat is ignored, presses and commands alike, for QUIET_SECONDS."""
    ticks = Ticks()
    guard = Guard(None, per_minute=20, clock=ticks)
    assert guard.presses_per_minute == PRESSES_PER_COMMAND * 20 == 60
    commands = [guard.admit(ALLOWED) for _ in range(20)]
    presses = []
    for _ in range(61):
        presses.append(guard.admit(ALLOWED, press=True))
        ticks.now += 0.5
    assert commands == [Verdict.PASS] * 20  # the presses did not spend the commands' budget
    assert presses == [Verdict.PASS] * 60 + [Verdict.SLOW_DOWN]
    assert guard.admit(ALLOWED) is Verdict.IGNORE and guard.admit(ALLOWED, press=True) is Verdict.IGNORE
    ticks.now += QUIET_SECONDS
    assert guard.admit(ALLOWED, press=True) is Verdict.PASS


def test_a_press_budget_can_be_set_apart_and_zero_turns_both_off() -> None:
    ticks = Ticks()
    guard = Guard(None, per_minute=2, presses_per_minute=4, clock=ticks)
    assert [guard.admit(ALLOWED, press=True) for _ in range(5)] == [Verdict.PASS] * 4 + [Verdict.SLOW_DOWN]
    off = Guard(None, per_minute=0, clock=ticks)
    assert all(off.admit(ALLOWED, press=True) is Verdict.PASS for _ in range(1000))


def test_a_flood_limit_of_zero_turns_it_off() -> None:
    guard = Guard(None, per_minute=0, clock=Ticks())
    assert all(guard.admit(ALLOWED) is Verdict.PASS for _ in range(1000))


def test_memory_stays_bounded_under_many_chats() -> None:
    ticks = Ticks()
    guard = Guard(frozenset(), per_minute=5, clock=ticks)
    for chat in range(MAX_TRACKED_CHATS * 2):
        guard.admit(chat)
    assert len(guard._refused_on) <= MAX_TRACKED_CHATS
    open_guard = Guard(None, per_minute=5, clock=ticks)
    for chat in range(MAX_TRACKED_CHATS):
        open_guard.admit(chat)
    ticks.now += 61
    for chat in range(MAX_TRACKED_CHATS, MAX_TRACKED_CHATS + 10):
        open_guard.admit(chat)
    assert len(open_guard._recent) <= 11


# --- through the real bot -----------------------------------------------------------------------------


def stored_about(bot: DirectBot, chat_id: int) -> dict[str, int]:
    db = bot.services.alerts.db
    return {
        table: db.execute(f"SELECT COUNT(*) FROM {table} WHERE chat_id = ?", [chat_id]).fetchone()[0]
        for table in ("chats", "rules", "outbox")
    }


async def test_a_private_bot_refuses_strangers_once_a_day_and_stores_nothing_about_them(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]],
) -> None:
    """CAPGAP_ALLOWED_CHATS: /start and /alert from a stranger register no chat and set no rule."""
    bot = await direct_bot_factory(allowed_chats=frozenset({ALLOWED}), admins=frozenset({ADMIN}))
    assert await bot.replies(STRANGER, "/start") == [REFUSAL]
    assert await bot.replies(STRANGER, "/alert rut above 3000") == []
    assert await bot.replies(STRANGER, "/digest 22:00") == []
    assert await bot.replies(-100555, "/start", chat_type="supergroup", user_id=STRANGER) == [REFUSAL]
    assert stored_about(bot, STRANGER) == {"chats": 0, "rules": 0, "outbox": 0}
    assert stored_about(bot, -100555) == {"chats": 0, "rules": 0, "outbox": 0}

    assert "Alert <b>#1</b> set" in (await bot.replies(ALLOWED, "/alert rut above 3000"))[0]
    assert "capgap" in (await bot.replies(ADMIN, "/start"))[0]  # the admin's own chat
    assert stored_about(bot, ALLOWED)["rules"] == 1


async def test_a_refused_chats_button_press_is_answered_silently(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]],
) -> None:
    open_bot = await direct_bot_factory()
    (sent,) = [c for c in await open_bot.message(STRANGER, "/standing") if c.method == "sendMessage"]
    private = await direct_bot_factory(allowed_chats=frozenset({ALLOWED}))
    query_id, calls = await private.press(STRANGER, sent.result["message_id"], "standing:10y")
    assert [c.method for c in calls] == ["sendMessage"]  # the day's one refusal, no edit
    assert calls[0].params["text"] == REFUSAL
    assert query_id in private.emulator.callback_answers


async def test_a_flooding_chat_gets_one_slow_down_then_nothing(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]],
) -> None:
    bot = await direct_bot_factory(flood_per_minute=3)
    answers = [await bot.replies(ALLOWED, "/start") for _ in range(6)]
    assert [len(a) for a in answers[:3]] == [1, 1, 1]
    assert answers[3] == [
        "Slow down, please: that is more than 3 commands a minute. I'll listen again in a minute."
    ]
    assert answers[4:] == [[], []]
    assert len(await bot.replies(ALLOWED + 1, "/start")) == 1  # other chats carry on


async def test_button_presses_are_counted_apart_from_commands_through_the_real_bot(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]],
) -> None:
    """CAPGAP_FLOOD_PER_MINUTE=3: /standing and nine presses of its period buttons each redraw the message,
    two more commands are answered, and only the tenth press in the minute is told to slow down."""
    bot = await direct_bot_factory(flood_per_minute=3)
    (sent,) = [c for c in await bot.message(ALLOWED, "/standing") if c.method == "sendMessage"]
    edits = []
    for n in range(9):
        _, calls = await bot.press(ALLOWED, sent.result["message_id"], ("standing:10y", "standing:1y")[n % 2])
        edits += [c for c in calls if c.method == "editMessageText" and c.ok]
    assert len(edits) == 9
    assert len(await bot.replies(ALLOWED, "/start")) == 1
    assert len(await bot.replies(ALLOWED, "/help")) == 1
    query_id, calls = await bot.press(ALLOWED, sent.result["message_id"], "standing:5y")
    assert [c.params.get("text") for c in calls if c.method == "sendMessage"] == [
        "Slow down, please: that is more than 9 button presses a minute. I'll listen again in a minute."
    ]
    assert not [c for c in calls if c.method == "editMessageText"]
    assert query_id in bot.emulator.callback_answers  # the spinner stops
    assert await bot.replies(ALLOWED, "/start") == []


async def test_group_chatter_is_not_counted_as_commands(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]],
) -> None:
    bot = await direct_bot_factory(flood_per_minute=2)
    group = -100777
    for _ in range(10):
        assert await bot.replies(group, "just talking", chat_type="supergroup") == []
    assert len(await bot.replies(group, "/start", chat_type="supergroup")) == 1


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("/target 3000 " + "x" * MAX_INPUT_CHARS, MAX_INPUT_CHARS),
        # /alert takes several rules, one a line (a pasted /export): up to Telegram's own message size.
        ("/alert rut above 3000 " + "x" * MAX_PASTE_CHARS, MAX_PASTE_CHARS),
    ],
)
async def test_an_over_long_message_gets_a_specific_reply_and_nothing_else(
    direct_bot: DirectBot, text: str, limit: int
) -> None:
    (reply,) = await direct_bot.replies(ALLOWED, text)
    assert reply == f"That message is too long for me ({len(text):,} characters): a command fits in {limit}."
    assert stored_about(direct_bot, ALLOWED)["rules"] == 0
