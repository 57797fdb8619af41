"""bot/limiter.py: what a Bot API call does when Telegram answers 429, through PTB's ``ExtBot`` to the
Bot API emulator. The limiter's ``sleep`` is the test's: it records each wait instead of taking it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from telegram.error import RetryAfter
from telegram.ext import ExtBot

from bot.limiter import LONGEST_WAIT, NO_RETRY, REPLY_RETRIES, Limiter, Retries
from testing.telegram import TelegramEmulator
from testing.world import TEST_TOKEN

CHAT = 4242


class Waits:
    """The limiter's sleep: remembers what it was asked to wait, waits nothing."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest_asyncio.fixture
async def bot(telegram_emulator: TelegramEmulator, waits: Waits) -> AsyncIterator[ExtBot[Retries]]:
    limiter = Limiter(30, sleep=waits)
    async with ExtBot(TEST_TOKEN, base_url=telegram_emulator.base_url, rate_limiter=limiter) as real_bot:
        yield real_bot


def sends(emu: TelegramEmulator) -> list[int]:
    return [c.status for c in emu.calls if c.method == "sendMessage"]


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


async def test_a_reply_waits_what_telegram_asks_each_time_then_goes_out_once(
    bot: ExtBot[Retries], telegram_emulator: TelegramEmulator, waits: Waits, caplog: pytest.LogCaptureFixture
) -> None:
    telegram_emulator.fail("sendMessage", 429, retry_after=3)
    telegram_emulator.fail("sendMessage", 429, retry_after=5)

    await bot.send_message(CHAT, "the answer")

    assert waits.asked == [3.0, 5.0]
    assert sends(telegram_emulator) == [429, 429, 200]
    assert [m.text for m in telegram_emulator.sent_to(CHAT)] == ["the answer"]
    assert logged(caplog, logging.WARNING) == []


async def test_a_reply_still_refused_after_its_retries_is_given_up_with_a_warning_not_an_error(
    bot: ExtBot[Retries], telegram_emulator: TelegramEmulator, waits: Waits, caplog: pytest.LogCaptureFixture
) -> None:
    telegram_emulator.fail("sendMessage", 429, retry_after=2, times=None)

    with pytest.raises(RetryAfter):
        await bot.send_message(CHAT, "the answer")

    assert waits.asked == [2.0] * REPLY_RETRIES
    assert sends(telegram_emulator) == [429] * (REPLY_RETRIES + 1)
    assert logged(caplog, logging.WARNING) == [
        f"Telegram asks to wait 2 s before sendMessage to chat {CHAT} (try {REPLY_RETRIES + 1} of "
        f"{REPLY_RETRIES + 1}); giving up"
    ]
    assert not any(r.exc_info for r in caplog.records)


async def test_a_wait_longer_than_a_reply_is_worth_is_not_taken(
    bot: ExtBot[Retries], telegram_emulator: TelegramEmulator, waits: Waits, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood ban of an hour: the reply is given up at once rather than sent an hour late."""
    telegram_emulator.fail("sendMessage", 429, retry_after=3600)

    with pytest.raises(RetryAfter):
        await bot.send_message(CHAT, "the answer")

    assert LONGEST_WAIT < 3600 and waits.asked == []
    assert sends(telegram_emulator) == [429]
    assert logged(caplog, logging.ERROR) == []


async def test_the_outbox_gets_its_429_back_at_once_and_nothing_is_logged(
    bot: ExtBot[Retries], telegram_emulator: TelegramEmulator, waits: Waits, caplog: pytest.LogCaptureFixture
) -> None:
    """``NO_RETRY`` (what bot/transport.py passes): no wait here, one call, the caller decides."""
    telegram_emulator.fail("sendMessage", 429, retry_after=7)

    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(CHAT, "an alert", rate_limit_args=NO_RETRY)

    assert raised.value.retry_after.total_seconds() == 7  # type: ignore[union-attr]
    assert waits.asked == [] and sends(telegram_emulator) == [429]
    assert logged(caplog, logging.WARNING) == []


async def test_button_answers_and_edits_are_waited_out_too(
    bot: ExtBot[Retries], telegram_emulator: TelegramEmulator, waits: Waits
) -> None:
    sent = await bot.send_message(CHAT, "1Y")
    telegram_emulator.fail("editMessageText", 429, retry_after=1)

    await bot.edit_message_text("10Y", chat_id=CHAT, message_id=sent.message_id)

    assert waits.asked == [1.0]
    assert telegram_emulator.chat_messages(CHAT)[-1].text == "10Y"
