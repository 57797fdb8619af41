"""The period buttons under /chart switch the picture in place (editMessageMedia), and the emulator's
editMessageMedia refuses what Telegram refuses."""

from __future__ import annotations

import csv
import re
from datetime import date
from typing import Any

import pytest
from telegram import Bot, InputMediaPhoto
from telegram.constants import ParseMode
from telegram.error import BadRequest

from testing.telegram import TelegramEmulator
from testing.world import AS_OF, SHARED_DATA, TEST_TOKEN
from tests.conftest import DirectBot

CHAT = 4242


def close_on_or_before(symbol: str, day: date) -> float:
    with (SHARED_DATA / f"{symbol}_daily.csv").open(newline="", encoding="utf-8") as handle:
        closes = {
            date.fromisoformat(row["date"]): float(row["close"])
            for row in csv.DictReader(handle)
            if row["close"].strip()
        }
    return closes[max(d for d in closes if d <= day)]


def labels(message: Any) -> dict[str, str]:
    """Callback data -> label of the message's buttons (the share button has no callback data)."""
    return {
        button["callback_data"]: button["text"]
        for row in (message.reply_markup or {}).get("inline_keyboard", [])
        for button in row
        if "callback_data" in button
    }


async def test_a_period_button_switches_the_chart_in_place(direct_bot: DirectBot) -> None:
    emu = direct_bot.emulator
    (sent,) = [c for c in await direct_bot.message(CHAT, "/chart 1y") if c.method == "sendPhoto"]
    first = emu.chat_messages(CHAT)[-1]
    assert labels(first)["chart:5y"] == "5Y" and labels(first)["chart:1y"] != "1Y"

    _, calls = await direct_bot.press(CHAT, first.message_id, "chart:5y")

    assert [c.method for c in calls if c.method != "answerCallbackQuery"] == ["editMessageMedia"]
    (edit,) = [c for c in calls if c.method == "editMessageMedia"]
    assert edit.ok and edit.params["message_id"] == first.message_id
    # One photo message in the chat, now showing another picture, captioned and keyed for 5Y.
    (now,) = [m for m in emu.chat_messages(CHAT) if m.message_id == first.message_id]
    assert [m.message_id for m in emu.chat_messages(CHAT)] == [first.message_id]
    assert now.photo is not None and now.photo.startswith(b"\x89PNG") and now.photo != first.photo
    assert now.message["photo"][-1]["file_id"] != sent.result["photo"][-1]["file_id"]
    assert "5Y, rebased to 100" in now.message["caption"]
    assert labels(now)["chart:1y"] == "1Y" and labels(now)["chart:5y"] != "5Y"
    # The caption's numbers are the 5-year returns of the history.
    shown = re.search(r"RUT ([+-][\d,.]+)% · SPX ([+-][\d,.]+)%", now.message["caption"])
    assert shown, now.message["caption"]
    five_years_before = AS_OF.replace(year=AS_OF.year - 5)
    for symbol, text in zip(("RUT", "GSPC"), shown.groups(), strict=True):
        expected = close_on_or_before(symbol, AS_OF) / close_on_or_before(symbol, five_years_before) - 1
        assert abs(float(text.replace(",", "")) - expected * 100) <= 0.005 + 1e-9


async def test_going_back_to_a_chart_sent_before_reuses_its_file_id(direct_bot: DirectBot) -> None:
    emu = direct_bot.emulator
    (sent,) = [c for c in await direct_bot.message(CHAT, "/chart 1y") if c.method == "sendPhoto"]
    message_id = sent.result["message_id"]
    await direct_bot.press(CHAT, message_id, "chart:5y")
    _, calls = await direct_bot.press(CHAT, message_id, "chart:1y")

    (edit,) = [c for c in calls if c.method == "editMessageMedia"]
    # The 1Y chart Telegram already has goes by its file_id, not as a second upload.
    assert edit.params["media"]["media"] == sent.result["photo"][-1]["file_id"]
    assert emu.chat_messages(CHAT)[-1].photo == emu.sent_to(CHAT)[0].photo
    assert [c.method for c in emu.calls_to(CHAT) if c.method.startswith("send")] == ["sendPhoto"]


async def test_pressing_the_period_shown_changes_nothing_and_says_nothing(direct_bot: DirectBot) -> None:
    emu = direct_bot.emulator
    (sent,) = [c for c in await direct_bot.message(CHAT, "/chart 1y") if c.method == "sendPhoto"]
    query_id, calls = await direct_bot.press(CHAT, sent.result["message_id"], "chart:1y")
    # Telegram answers "message is not modified", which is no error to the user.
    assert [(c.method, c.status) for c in calls if c.method != "answerCallbackQuery"] == [
        ("editMessageMedia", 400)
    ]
    assert query_id in emu.callback_answers
    assert len(emu.chat_messages(CHAT)) == 1


async def test_a_refusal_under_a_chart_replaces_its_caption(direct_bot: DirectBot) -> None:
    emu = direct_bot.emulator
    (sent,) = [c for c in await direct_bot.message(CHAT, "/chart 1y") if c.method == "sendPhoto"]
    _, calls = await direct_bot.press(CHAT, sent.result["message_id"], "chart:99y", forged=True)
    (edit,) = [c for c in calls if c.method == "editMessageCaption"]
    assert edit.ok and "no longer valid" in edit.params["caption"]
    assert [c.method for c in emu.calls_to(CHAT) if c.method.startswith("send")] == ["sendPhoto"]


# --- the emulator's editMessageMedia, driven by PTB's own Bot ------------------------------------------


@pytest.fixture
def png() -> bytes:
    from bot.charts import render_comparison
    from tests.test_charts import tiny_closes

    return render_comparison(tiny_closes(), "1w")


async def test_emulator_edit_message_media_follows_the_bot_api(
    telegram_emulator: TelegramEmulator, png: bytes
) -> None:
    emu = telegram_emulator
    async with Bot(TEST_TOKEN, base_url=emu.base_url) as bot:
        photo = await bot.send_photo(CHAT, photo=png, caption="<b>one</b>", parse_mode=ParseMode.HTML)
        file_id = photo.photo[-1].file_id

        # An upload travels as attach://<part> in multipart/form-data; each upload is a new file.
        edited = await bot.edit_message_media(
            InputMediaPhoto(png, caption="two"), chat_id=CHAT, message_id=photo.message_id
        )
        assert edited.caption == "two" and edited.photo[-1].file_id != file_id
        (call,) = [c for c in emu.calls if c.method == "editMessageMedia"]
        assert call.params["media"]["media"].startswith("attach://")

        # A file_id Telegram has; the same media, caption and keyboard again is "not modified".
        again = await bot.edit_message_media(
            InputMediaPhoto(file_id, caption="one"), chat_id=CHAT, message_id=photo.message_id
        )
        assert again.photo[-1].file_id == file_id and again.caption == "one"
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_media(
                InputMediaPhoto(file_id, caption="one"), chat_id=CHAT, message_id=photo.message_id
            )
        with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
            await bot.edit_message_media(
                InputMediaPhoto("no-such-file-id"), chat_id=CHAT, message_id=photo.message_id
            )
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_media(InputMediaPhoto(file_id), chat_id=CHAT, message_id=999)
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):  # in that chat only
            await bot.edit_message_media(
                InputMediaPhoto(file_id), chat_id=CHAT + 1, message_id=photo.message_id
            )

        users = emu.user_message(CHAT, "hello")["message"]["message_id"]
        with pytest.raises(BadRequest, match=r"(?i)message can.t be edited"):  # not the bot's own
            await bot.edit_message_media(InputMediaPhoto(file_id), chat_id=CHAT, message_id=users)

    # An attach:// name with no such part, and no media at all, sent by hand as a client could.
    import aiohttp

    async with aiohttp.ClientSession() as client:
        url = f"{emu.base_url}{emu.token}/editMessageMedia"
        form = aiohttp.FormData()
        form.add_field("chat_id", str(CHAT))
        form.add_field("message_id", str(photo.message_id))
        form.add_field("media", '{"type": "photo", "media": "attach://missing"}')
        form.add_field("other", png, filename="chart.png", content_type="image/png")
        async with client.post(url, data=form) as response:
            assert response.status == 400
            assert (await response.json())[
                "description"
            ] == "Bad Request: can't parse InputMedia: media not found"
        async with client.post(
            url, data={"chat_id": CHAT, "message_id": photo.message_id, "media": '{"type": "photo"}'}
        ) as response:
            assert (await response.json())["description"] == (
                "Bad Request: can't parse InputMedia: Media is not specified"
            )
    assert emu.chat_messages(CHAT)[0].photo == png  # the refused edits changed nothing
