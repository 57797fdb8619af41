"""Inline mode end to end: a user types ``@bot …`` in any chat, the emulator sends the real bot an
``inline_query`` update, and the bot answers with answerInlineQuery; the figures are computed here from the
CSV history, independently of capgap."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot, InlineQueryResultArticle, InputTextMessageContent
from telegram.error import BadRequest

from testing.telegram import TelegramEmulator
from testing.world import SHARED_DATA
from tests.conftest import RunningBot

USER = 4242
CHAT = 1001


def closes(stem: str, through: date = date(2024, 1, 18)) -> list[tuple[date, float]]:
    with (SHARED_DATA / f"{stem}_daily.csv").open() as f:
        rows = [(date.fromisoformat(r["date"]), float(r["close"])) for r in csv.DictReader(f)]
    return [(d, c) for d, c in rows if d <= through]


def ten_year_return(stem: str) -> float:
    """Latest close over the last close on or before the same date ten years earlier, minus one."""
    history = closes(stem)
    last_day, last = history[-1]
    then = last_day.replace(year=last_day.year - 10)
    start = [c for d, c in history if d <= then][-1]
    return last / start - 1


async def ask_inline(bot: RunningBot, query: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Type ``@bot query``; returns the answerInlineQuery parameters and its results."""
    query_id = bot.emulator.inline_query(USER, query)
    (call,) = await bot.emulator.wait_for(method="answerInlineQuery")
    assert call.params["inline_query_id"] == query_id
    return call.params, call.params["results"]


async def test_standing_inline_gives_the_ten_year_figures(running_bot: RunningBot) -> None:
    params, (result,) = await ask_inline(running_bot, "standing 10y")

    rut, spx = ten_year_return("RUT"), ten_year_return("GSPC")
    text = result["input_message_content"]["message_text"]
    assert result["type"] == "article" and result["title"] == "Russell 2000 vs S&P 500 · 10Y"
    assert f"{rut * 100:+,.2f}%" in text and f"{spx * 100:+,.2f}%" in text
    assert f"{abs(rut - spx) * 100:,.1f} points" in text
    assert params["cache_time"] == 60 and not params.get("is_personal")
    # No period buttons (a message sent inline is in no chat the bot could redraw); the share button stays.
    (row,) = result["reply_markup"]["inline_keyboard"]
    assert row == [{"text": "↗ Share", "switch_inline_query": "standing 10y"}]


async def test_price_inline_quotes_the_fund_with_its_day_change(running_bot: RunningBot) -> None:
    _, (result,) = await ask_inline(running_bot, "/price IWM")

    (_, previous), (last_day, last) = closes("IWM")[-2:]
    text = result["input_message_content"]["message_text"]
    assert f"<b>{last:,.2f}</b> {last - previous:+,.2f} ({(last / previous - 1) * 100:+.2f}%)" in text
    assert f"{last_day.day} {last_day:%b %Y} close" in text


async def test_a_chart_is_a_cached_photo_once_telegram_has_it(running_bot: RunningBot) -> None:
    """Inline answers cannot upload: before the chart was ever sent it comes as text saying how to get the
    picture; once a chat received it, the inline answer is that photo by the file_id Telegram gave."""
    _, (before,) = await ask_inline(running_bot, "chart 5y")
    assert before["type"] == "article"
    assert "/chart 5y" in before["input_message_content"]["message_text"]

    await running_bot.ask(CHAT, "/chart 5y")
    (upload,) = [c for c in running_bot.emulator.calls if c.method == "sendPhoto"]
    file_id = upload.response["result"]["photo"][-1]["file_id"]

    _, (after,) = await ask_inline(running_bot, "chart 5y")
    assert after["type"] == "photo" and after["photo_file_id"] == file_id
    assert "rebased to 100" in after["caption"]


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ("", "Type a question after my name"),
        ("stan", "Did you mean standing?"),
        ("alert rut above 3000", "write to me directly"),
        ("standing 7q", "I don't know the period"),
        ("price xyz", "I don't know “xyz”"),
    ],
)
async def test_bad_input_gets_an_article_saying_what_to_type(
    running_bot: RunningBot, query: str, expect: str
) -> None:
    params, (result,) = await ask_inline(running_bot, query)
    text = result["input_message_content"]["message_text"]
    assert expect in text.replace("<b>", "").replace("</b>", "")
    assert "reply_markup" not in result  # nothing worth sharing
    assert params["cache_time"] == 300


async def test_market_answers_in_chats_carry_a_share_button(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    await running_bot.ask(CHAT, "/standing 10y")
    message = emu.sent_to(CHAT)[-1]
    shares = [b for row in message.reply_markup["inline_keyboard"] for b in row if "switch_inline_query" in b]
    assert shares == [{"text": "↗ Share", "switch_inline_query": "standing 10y"}]

    emu.press_button(CHAT, message.message_id, "standing:5y")
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    pressed = emu.chat_messages(CHAT)[-1].reply_markup["inline_keyboard"]
    assert {"text": "↗ Share", "switch_inline_query": "standing 5y"} in pressed[-1]

    await running_bot.ask(CHAT, "/alerts")  # a chat's own alerts: nothing to share
    assert "reply_markup" not in emu.sent_to(CHAT)[-1].message


async def test_a_private_bot_leaves_strangers_inline_queries_unanswered(
    direct_bot_factory: Any, tmp_path: Path
) -> None:
    bot = await direct_bot_factory(allowed_chats=frozenset({CHAT}))
    emu = bot.emulator
    emu.inline_query(USER, "standing")
    update = emu.pending_updates[-1]
    await bot.process(update, USER)
    assert not [c for c in emu.calls if c.method == "answerInlineQuery"]

    emu.inline_query(CHAT, "standing")  # an allowed user, from any chat
    await bot.process(emu.pending_updates[-1], CHAT)
    (answered,) = [c for c in emu.calls if c.method == "answerInlineQuery"]
    assert answered.ok


# --- the emulator refuses what Telegram refuses -----------------------------------------------------------


def article(result_id: str, text: str = "hello") -> InlineQueryResultArticle:
    return InlineQueryResultArticle(result_id, "title", InputTextMessageContent(text, parse_mode="HTML"))


@pytest.mark.parametrize(
    ("results", "error"),
    [
        ([article(str(i)) for i in range(51)], "RESULTS_TOO_MUCH"),
        ([article("a"), article("a")], "RESULT_ID_DUPLICATE"),
        ([article("x" * 65)], "RESULT_ID_INVALID"),
        ([article("a", "<b>open")], "can't parse entities"),
    ],
)
async def test_the_emulator_refuses_inline_answers_telegram_refuses(
    telegram_emulator: TelegramEmulator, results: list[Any], error: str
) -> None:
    emu = telegram_emulator
    query_id = emu.inline_query(USER, "x")
    async with Bot(emu.token, base_url=emu.base_url) as bot:
        with pytest.raises(BadRequest, match=f"(?i){error}"):  # PTB capitalises the description
            await bot.answer_inline_query(query_id, results)
        assert query_id not in emu.inline_answers


async def test_an_inline_query_is_answered_once(telegram_emulator: TelegramEmulator) -> None:
    emu = telegram_emulator
    query_id = emu.inline_query(USER, "x")
    async with Bot(emu.token, base_url=emu.base_url) as bot:
        assert await bot.answer_inline_query(query_id, [article("1")])
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_inline_query(query_id, [article("1")])
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_inline_query("12345", [article("1")])


async def test_a_cached_photo_needs_a_file_telegram_has(telegram_emulator: TelegramEmulator) -> None:
    from telegram import InlineQueryResultCachedPhoto

    emu = telegram_emulator
    query_id = emu.inline_query(USER, "x")
    async with Bot(emu.token, base_url=emu.base_url) as bot:
        with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
            await bot.answer_inline_query(query_id, [InlineQueryResultCachedPhoto("1", "no-such-file")])
