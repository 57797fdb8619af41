"""End to end: the real PTB Application long-polling the Bot API emulator, answering from the real history."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import DirectBot, RunningBot

CHAT = 1001


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("/start", "capgap"),
        ("/help", "/target LEVEL [index]"),
        ("/standing", "Russell 2000 vs S&P 500"),
        ("/standing 10y", "▸10Y"),
        ("/etf 25000 20", "VTWO instead of IWM keeps"),
        ("/gap", "No reading yet"),
        ("/target 3000", "needs +55.95% to reach 3,000"),
        ("/target 3000 russell", "needs +55.95%"),
    ],
)
async def test_every_command_answers_in_html(running_bot: RunningBot, text: str, expect: str) -> None:
    call = await running_bot.ask(CHAT, text)
    assert call.method == "sendMessage" and call.params["parse_mode"] == "HTML"
    sent = running_bot.emulator.sent_to(CHAT)[-1]
    assert expect in sent.plain_text


async def test_chart_is_uploaded_as_a_png_with_a_caption(running_bot: RunningBot) -> None:
    call = await running_bot.ask(CHAT, "/chart 5y")
    assert call.method == "sendPhoto"
    sent = running_bot.emulator.sent_to(CHAT)[-1]
    assert sent.photo is not None and sent.photo.startswith(b"\x89PNG\r\n\x1a\n")
    assert "rebased to 100" in sent.caption


async def test_period_keyboard_edits_the_standing_message(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    await running_bot.ask(CHAT, "/standing")
    first = emu.sent_to(CHAT)[-1]
    buttons = [b.get("callback_data") for row in first.reply_markup["inline_keyboard"] for b in row]
    assert "standing:10y" in buttons
    callback_id = emu.press_button(CHAT, first.message_id, "standing:10y")
    (edit,) = await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert edit.params["message_id"] == first.message_id
    assert "▸10Y" in emu.chat_messages(CHAT)[-1].plain_text
    await emu.wait_for(method="answerCallbackQuery")
    assert callback_id in emu.callback_answers


async def test_a_forged_period_button_is_refused_without_editing(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    await running_bot.ask(CHAT, "/standing")
    first = emu.sent_to(CHAT)[-1]
    emu.press_button(CHAT, first.message_id, "standing:99y", forged=True)
    (edit,) = await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert "no longer valid" in edit.params["text"]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("/standing 7q", "I don't know the period"),
        ("/target abc", "is not an index level"),
        ("/etf -5", "is not an amount of money"),
        ("/nosuchcommand", "Send /help"),
        ("hello there", "Send /help"),
    ],
)
async def test_bad_input_gets_a_specific_reply(running_bot: RunningBot, text: str, expect: str) -> None:
    await running_bot.ask(CHAT, text)
    assert expect in running_bot.emulator.sent_to(CHAT)[-1].plain_text


async def test_market_source_down_is_reported_not_silent(running_bot: RunningBot) -> None:
    from market.model import MarketUnavailable

    class Down:
        name = "Yahoo Finance"

        def fetch(self, symbols, since=None):  # type: ignore[no-untyped-def]
            raise MarketUnavailable("Yahoo did not answer (timeout)")

        def fetch_funds(self, symbols):  # type: ignore[no-untyped-def]
            raise MarketUnavailable("Yahoo did not answer (timeout)")

    market = running_bot.services.market
    market.cache.db.execute("DELETE FROM closes")
    market.source = Down()
    market.refresh_prices()
    await running_bot.ask(CHAT, "/standing")
    text = running_bot.emulator.sent_to(CHAT)[-1].plain_text
    assert "Market data is unavailable right now" in text and "timeout" in text


async def test_an_unexpected_error_is_logged_and_the_user_told(
    running_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    running_bot.services.market._snapshot = "not a snapshot"  # type: ignore[assignment]
    await running_bot.ask(CHAT, "/standing")
    assert "something went wrong" in running_bot.emulator.sent_to(CHAT)[-1].plain_text
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


async def test_the_same_chart_is_uploaded_once_and_then_sent_by_file_id(running_bot: RunningBot) -> None:
    """A hundred chats asking the same chart cost one render and one upload (Telegram keeps the photo)."""
    emu = running_bot.emulator
    for chat in (CHAT, CHAT + 1, CHAT + 2):
        await running_bot.ask(chat, "/chart 1y")
    photos = [c.params["photo"] for c in emu.calls if c.method == "sendPhoto"]
    assert not isinstance(photos[0], str)  # the upload
    assert photos[1] == photos[2] and isinstance(photos[1], str)  # the file_id Telegram returned
    assert all(m.photo == emu.sent_to(CHAT)[-1].photo for c in (CHAT + 1, CHAT + 2) for m in emu.sent_to(c))


async def test_concurrent_askers_share_one_computation_of_an_answer(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    chats = range(5000, 5020)
    for chat in chats:
        emu.user_message(chat, "/standing 5y")
    replies = await emu.wait_for(method="sendMessage", count=len(chats))
    assert len({c.params["text"] for c in replies}) == 1
    built = [key for key in running_bot.services.answers.entries() if key[0] == "standing"]
    assert len(built) == 1  # one entry, built once, awaited by all twenty


async def test_a_command_addressed_to_another_bot_is_left_alone(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    group = -100500
    emu.user_message(group, "/frobnicate@some_other_bot", chat_type="group", user_id=5)
    emu.user_message(group, "/frobnicate@capgap_test_bot", chat_type="group", user_id=5)
    (reply,) = await emu.wait_for(chat_id=group, method="sendMessage")
    assert "I don't know /frobnicate" in reply.params["text"]
    assert len([c for c in emu.calls_to(group) if c.method == "sendMessage"]) == 1


async def test_a_reply_telegram_asks_to_wait_for_arrives_once_after_the_wait(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]], caplog: pytest.LogCaptureFixture
) -> None:
    """With Telegram's limits on (CAPGAP_RATE_LIMIT=30), a 429 on the /help answer is waited out and the
    same answer sent again: it arrives once, and a 429 is no error in the log. (This one really waits the
    one second Telegram asks, its least.)"""
    bot = await direct_bot_factory(rate_limit=30)
    emu = bot.emulator
    emu.fail("sendMessage", 429, retry_after=1, chat_id=CHAT)

    calls = await bot.message(CHAT, "/help")

    assert [(c.method, c.status) for c in calls] == [("sendMessage", 429), ("sendMessage", 200)]
    assert calls[0].params["text"] == calls[1].params["text"]
    (arrived,) = emu.sent_to(CHAT)
    assert "/target LEVEL [index]" in arrived.plain_text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("wait 1 s before sendMessage" in r.getMessage() for r in caplog.records)


async def test_a_reply_under_a_flood_ban_is_dropped_with_a_warning_not_an_error(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]], caplog: pytest.LogCaptureFixture
) -> None:
    """Telegram asking for an hour's wait: the reply is not held that long, no apology is attempted (it
    would be refused alike), and the log says so in one warning, not an error with a traceback."""
    bot = await direct_bot_factory(rate_limit=30)
    bot.emulator.fail("sendMessage", 429, retry_after=3600, chat_id=CHAT)

    calls = await bot.message(CHAT, "/help")

    assert [(c.method, c.status) for c in calls] == [("sendMessage", 429)]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert f"chat {CHAT}: no reply sent, Telegram asks to wait 3600 s" in [
        r.getMessage() for r in caplog.records
    ]
