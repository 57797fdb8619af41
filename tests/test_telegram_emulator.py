"""The Telegram emulator, driven by the real python-telegram-bot HTTP stack (no mocks)."""

from __future__ import annotations

import asyncio
import datetime as dtm
import struct
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from testing.telegram import (
    SECRET_TOKEN_HEADER,
    TEST_BOT_USERNAME,
    TEST_TOKEN,
    TelegramEmulator,
    parse_html,
    telegram_emulator_fixture,  # noqa: F401 - registers the telegram_emulator fixture
)

WRONG_TOKEN = "54321:capgap-wrong-token-not-a-real-one"


def tiny_png(width: int = 2, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


@asynccontextmanager
async def bot_for(emu: TelegramEmulator, token: str = TEST_TOKEN) -> AsyncIterator[Bot]:
    async with Bot(token, base_url=emu.base_url, base_file_url=emu.base_file_url) as bot:
        yield bot


def application_for(emu: TelegramEmulator, *handlers: BaseHandler) -> Application:
    app = (
        ApplicationBuilder().token(TEST_TOKEN).base_url(emu.base_url).base_file_url(emu.base_file_url).build()
    )
    for handler in handlers:
        app.add_handler(handler)
    return app


@asynccontextmanager
async def polling(emu: TelegramEmulator, *handlers: BaseHandler) -> AsyncIterator[Application]:
    app = application_for(emu, *handlers)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=10))
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


async def reply_pong(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"pong {' '.join(context.args or [])}".strip())


# -- identity and routing ---------------------------------------------------------------------------------


async def test_get_me_returns_the_bot_user(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        me = await bot.get_me()
    assert me.is_bot
    assert me.username == TEST_BOT_USERNAME
    assert me.id == 12345


async def test_unknown_token_raises_invalid_token(telegram_emulator: TelegramEmulator) -> None:
    with pytest.raises(InvalidToken):
        async with bot_for(telegram_emulator, WRONG_TOKEN) as bot:
            await bot.get_me()


async def test_method_names_are_case_insensitive(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        result = await bot.do_api_request("GETME")
    assert result["username"] == TEST_BOT_USERNAME


async def test_unknown_method_answers_400_with_a_description(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        with pytest.raises(BadRequest, match=r"(?i)method \"nonexistentMethod\" not found"):
            await bot.do_api_request("nonexistentMethod")
    [call] = await telegram_emulator.wait_for(method="nonexistentMethod", ok=False)
    assert call.status == 400


# -- long polling -------------------------------------------------------------------------------------------


async def test_long_polling_delivers_a_command_and_the_reply_arrives_quickly(
    telegram_emulator: TelegramEmulator,
) -> None:
    emu = telegram_emulator
    async with polling(emu, CommandHandler("ping", reply_pong)):
        started = time.monotonic()
        emu.user_message(42, "/ping RUT")
        [reply] = await emu.wait_for(method="sendMessage", chat_id=42)
    assert reply.params["text"] == "pong RUT"
    assert reply.time - started < 0.5
    assert emu.chat_messages(42)[0].text == "pong RUT"


async def test_command_addressed_to_the_bot_by_name_reaches_the_command_handler(
    telegram_emulator: TelegramEmulator,
) -> None:
    emu = telegram_emulator
    async with polling(emu, CommandHandler("ping", reply_pong)):
        emu.user_message(-100, f"/ping@{TEST_BOT_USERNAME} SPX", chat_type="group", user_id=7, title="caps")
        [reply] = await emu.wait_for(method="sendMessage", chat_id=-100)
    assert reply.params["text"] == "pong SPX"


async def test_get_updates_holds_the_request_until_an_update_arrives(
    telegram_emulator: TelegramEmulator,
) -> None:
    emu = telegram_emulator
    async with bot_for(emu) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=dtm.timedelta(seconds=10)))
        await emu.wait_until_polling()
        emu.user_message(1, "hello")
        started = time.monotonic()
        updates = await poll
    assert time.monotonic() - started < 0.5
    assert [u.message.text for u in updates if u.message] == ["hello"]


async def test_get_updates_times_out_with_no_updates(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        assert await bot.get_updates(timeout=dtm.timedelta(seconds=0)) == ()
        assert await bot.get_updates(timeout=dtm.timedelta(seconds=1)) == ()


async def test_offset_confirms_updates_so_they_are_not_delivered_again(
    telegram_emulator: TelegramEmulator,
) -> None:
    emu = telegram_emulator
    first = emu.user_message(1, "one")
    emu.user_message(1, "two")
    async with bot_for(emu) as bot:
        limited = await bot.get_updates(limit=1, timeout=0)
        unconfirmed = await bot.get_updates(timeout=0)
        again = await bot.get_updates(timeout=0)
        after_first = await bot.get_updates(offset=first["update_id"] + 1, timeout=0)
        after_all = await bot.get_updates(offset=after_first[-1].update_id + 1, timeout=0)
    assert [u.update_id for u in limited] == [first["update_id"]]
    assert [u.update_id for u in again] == [u.update_id for u in unconfirmed]
    assert len(unconfirmed) == 2
    assert [u.message.text for u in after_first if u.message] == ["two"]
    assert after_all == ()
    assert emu.pending_updates == []


async def test_a_newer_get_updates_ends_a_waiting_one_with_conflict(
    telegram_emulator: TelegramEmulator,
) -> None:
    async with bot_for(telegram_emulator) as first, bot_for(telegram_emulator) as second:
        older = asyncio.create_task(first.get_updates(timeout=dtm.timedelta(seconds=10)))
        await telegram_emulator.wait_until_polling()
        assert await second.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await older


# -- sending ------------------------------------------------------------------------------------------------


async def test_send_photo_uploads_multipart_and_the_bytes_are_stored(
    telegram_emulator: TelegramEmulator,
) -> None:
    emu = telegram_emulator
    png = tiny_png(3, 2)
    async with bot_for(emu) as bot:
        message = await bot.send_photo(7, photo=png, caption="<b>RUT</b> vs SPX", parse_mode=ParseMode.HTML)
        downloaded = await (await bot.get_file(message.photo[-1].file_id)).download_as_bytearray()
    assert (message.photo[-1].width, message.photo[-1].height) == (3, 2)
    assert message.caption == "RUT vs SPX"
    [sent] = emu.sent_to(7)
    assert sent.photo == png
    assert sent.caption == "<b>RUT</b> vs SPX"
    assert bytes(downloaded) == png


async def test_send_photo_rejects_bytes_that_are_not_an_image(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
            await bot.send_photo(7, photo=b"date,close\n2024-01-02,100\n")


async def test_caption_over_1024_characters_is_rejected(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        with pytest.raises(BadRequest, match="Message caption is too long"):
            await bot.send_photo(7, photo=tiny_png(), caption="x" * 1025)


async def test_html_is_parsed_into_text_and_entities(telegram_emulator: TelegramEmulator) -> None:
    html = (
        '<b>RUT</b> &amp; <a href="https://example.org/spx">SPX</a> '
        '<pre><code class="language-py">x</code></pre>'
    )
    async with bot_for(telegram_emulator) as bot:
        message = await bot.send_message(5, html, parse_mode=ParseMode.HTML)
    assert message.text == "RUT & SPX x"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("bold", 0, 3),
        ("text_link", 6, 3),
        ("pre", 10, 1),
    ]
    assert message.entities[1].url == "https://example.org/spx"
    assert message.entities[2].language == "py"


@pytest.mark.parametrize(
    ("html", "complaint"),
    [
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("RUT < SPX", 'Unsupported start tag "" at byte offset 4'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ('<span class="red">x</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
async def test_invalid_html_raises_bad_request_like_telegram(
    telegram_emulator: TelegramEmulator, html: str, complaint: str
) -> None:
    async with bot_for(telegram_emulator) as bot:
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(5, html, parse_mode=ParseMode.HTML)
    [call] = await telegram_emulator.wait_for(method="sendMessage", ok=False)
    assert call.description == f"Bad Request: can't parse entities: {complaint}"


def test_html_byte_offsets_count_utf8_bytes() -> None:
    """Telegram reports byte offsets, so a multi-byte character before the error shifts it."""
    with pytest.raises(ValueError, match="at byte offset 5"):
        parse_html("×RUT<x>")


async def test_text_over_4096_characters_after_parsing_is_rejected(
    telegram_emulator: TelegramEmulator,
) -> None:
    async with bot_for(telegram_emulator) as bot:
        await bot.send_message(5, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(5, "x" * 4097)


async def test_whitespace_only_text_is_rejected_as_empty(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(5, "<b> </b>", parse_mode=ParseMode.HTML)


async def test_callback_data_over_64_bytes_is_rejected(telegram_emulator: TelegramEmulator) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("too much", callback_data="x" * 65)]])
    async with bot_for(telegram_emulator) as bot:
        with pytest.raises(BadRequest, match="Button_data_invalid"):
            await bot.send_message(5, "pick", reply_markup=markup)


# -- buttons and edits --------------------------------------------------------------------------------------


async def test_inline_button_press_reaches_the_callback_handler_which_edits_the_message(
    telegram_emulator: TelegramEmulator,
) -> None:
    emu = telegram_emulator

    async def offer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        buttons = [[InlineKeyboardButton("1y", callback_data="period:1y")]]
        await update.effective_message.reply_text("Which period?", reply_markup=InlineKeyboardMarkup(buttons))

    async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("ok")
        await query.edit_message_text(f"Period: {query.data}")

    async with polling(emu, CommandHandler("gap", offer), CallbackQueryHandler(choose)):
        emu.user_message(9, "/gap")
        [offer_call] = await emu.wait_for(method="sendMessage", chat_id=9)
        query_id = emu.press_button(9, offer_call.result["message_id"], "period:1y")
        [edit] = await emu.wait_for(method="editMessageText", chat_id=9)
    assert edit.params["text"] == "Period: period:1y"
    assert emu.callback_answers[query_id]["text"] == "ok"
    [message] = emu.chat_messages(9)
    assert message.text == "Period: period:1y"
    assert message.reply_markup is None
    assert [record.method for record in emu.sent_to(9)] == ["sendMessage", "editMessageText"]


async def test_press_button_refuses_a_button_the_message_does_not_offer(
    telegram_emulator: TelegramEmulator,
) -> None:
    async with bot_for(telegram_emulator) as bot:
        message = await bot.send_message(3, "no buttons")
    with pytest.raises(ValueError, match="no button"):
        telegram_emulator.press_button(3, message.message_id, "anything")


async def test_editing_with_the_same_text_is_not_modified_and_unknown_ids_are_not_found(
    telegram_emulator: TelegramEmulator,
) -> None:
    async with bot_for(telegram_emulator) as bot:
        message = await bot.send_message(3, "<b>RUT</b> 2000", parse_mode=ParseMode.HTML)
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_text(
                "<b>RUT</b> 2000", chat_id=3, message_id=message.message_id, parse_mode="HTML"
            )
        edited = await bot.edit_message_text("RUT 2000", chat_id=3, message_id=message.message_id)
        with pytest.raises(BadRequest, match="Message to edit not found"):
            await bot.edit_message_text("x", chat_id=3, message_id=999)
    assert edited.text == "RUT 2000"
    assert edited.entities == ()
    assert edited.edit_date is not None


async def test_edit_reply_markup_replaces_the_keyboard(telegram_emulator: TelegramEmulator) -> None:
    first = InlineKeyboardMarkup([[InlineKeyboardButton("a", callback_data="a")]])
    second = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="b")]])
    async with bot_for(telegram_emulator) as bot:
        message = await bot.send_message(3, "pick", reply_markup=first)
        await bot.edit_message_reply_markup(chat_id=3, message_id=message.message_id, reply_markup=second)
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_reply_markup(chat_id=3, message_id=message.message_id, reply_markup=second)
    [current] = telegram_emulator.chat_messages(3)
    assert current.reply_markup == second.to_dict()


async def test_deleted_messages_leave_the_chat(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        message = await bot.send_message(3, "soon gone")
        assert await bot.delete_message(3, message.message_id)
        with pytest.raises(BadRequest, match="Message to delete not found"):
            await bot.delete_message(3, message.message_id)
    assert telegram_emulator.chat_messages(3) == []


# -- faults -------------------------------------------------------------------------------------------------


async def test_injected_500_fails_once_then_the_call_succeeds(telegram_emulator: TelegramEmulator) -> None:
    emu = telegram_emulator
    emu.fail("sendMessage", 500)
    async with bot_for(emu) as bot:
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.send_message(1, "first try")
        await bot.send_message(1, "second try")
    [failed] = await emu.wait_for(method="sendMessage", ok=False)
    [succeeded] = await emu.wait_for(method="sendMessage")
    assert (failed.status, succeeded.params["text"]) == (500, "second try")


async def test_injected_429_raises_retry_after_with_the_given_delay(
    telegram_emulator: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB 22 warns when RetryAfter is read as int seconds
    telegram_emulator.fail("sendMessage", 429, retry_after=7, chat_id=2)
    async with bot_for(telegram_emulator) as bot:
        await bot.send_message(1, "other chat is not throttled")
        with pytest.raises(RetryAfter) as raised:
            await bot.send_message(2, "throttled")
    assert raised.value.retry_after == dtm.timedelta(seconds=7)


async def test_blocked_chat_raises_forbidden_until_unblocked(telegram_emulator: TelegramEmulator) -> None:
    emu = telegram_emulator
    emu.block(4)
    async with bot_for(emu) as bot:
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(4, "alert")
        emu.unblock(4)
        await bot.send_message(4, "alert")
    assert [record.text for record in emu.sent_to(4)] == ["alert"]


async def test_flood_limits_answer_429_past_one_message_per_second_per_chat(
    telegram_emulator: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    emu = telegram_emulator
    emu.enforce_limits()
    async with bot_for(emu) as bot:
        await bot.send_message(1, "first")
        await bot.send_message(2, "another chat has its own window")
        with pytest.raises(RetryAfter) as raised:
            await bot.send_message(1, "second within a second")
    assert raised.value.retry_after == dtm.timedelta(seconds=1)
    assert emu.too_many_requests == 1


async def test_flood_limits_allow_twenty_messages_a_minute_in_a_group(
    telegram_emulator: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    emu = telegram_emulator
    emu.enforce_limits(per_chat_per_second=100)
    emu.add_chat(-500, chat_type="group")
    async with bot_for(emu) as bot:
        for n in range(20):
            await bot.send_message(-500, f"alert {n}")
        with pytest.raises(RetryAfter) as raised:
            await bot.send_message(-500, "one too many")
    assert dtm.timedelta(seconds=59) <= raised.value.retry_after <= dtm.timedelta(seconds=60)


# -- bot settings -------------------------------------------------------------------------------------------


async def test_set_my_commands_is_recorded_and_validated(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        await bot.set_my_commands([("gap", "Valuation gap"), ("rut", "Russell 2000")])
        menu = await bot.get_my_commands()
        with pytest.raises(BadRequest, match="Bot_command_invalid"):
            await bot.set_my_commands([("Gap", "capital letters are not allowed")])
        with pytest.raises(BadRequest, match="Bot_command_description_invalid"):
            await bot.set_my_commands([("gap", "")])
        await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()
    assert [command.command for command in menu] == ["gap", "rut"]
    assert telegram_emulator.commands == []
    assert telegram_emulator.calls_to(1) == []


async def test_active_webhook_makes_get_updates_conflict_until_deleted(
    telegram_emulator: TelegramEmulator,
) -> None:
    emu = telegram_emulator
    emu.user_message(1, "waiting")
    async with bot_for(emu) as bot:
        await bot.set_webhook(
            "https://capgap.example/hook", secret_token="s3cret", allowed_updates=["message"]
        )
        info = await bot.get_webhook_info()
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates(timeout=0)
        await bot.delete_webhook(drop_pending_updates=True)
        assert await bot.get_updates(timeout=0) == ()
    assert (info.url, info.pending_update_count) == ("https://capgap.example/hook", 1)
    assert emu.webhook.url == ""


async def test_deliver_to_webhook_posts_the_update_with_the_secret_token(
    telegram_emulator: TelegramEmulator,
) -> None:
    emu = telegram_emulator
    received: list[tuple[str | None, dict]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get(SECRET_TOKEN_HEADER), await request.json()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with bot_for(emu) as bot:
            await bot.set_webhook(f"http://{host}:{port}/hook", secret_token="s3cret")
        update = emu.user_message(1, "/gap")
        assert await emu.deliver_to_webhook(update) == 200
        assert (
            await emu.deliver_to_webhook(update, secret_token=None, url=f"http://{host}:{port}/nowhere")
            == 404
        )
    finally:
        await runner.cleanup()
    [(secret, body)] = received
    assert secret == "s3cret"
    assert Update.de_json(body, None).message.text == "/gap"  # type: ignore[union-attr]
    assert emu.pending_updates == []


# -- chats --------------------------------------------------------------------------------------------------


async def test_chat_members_follow_the_declared_admins(telegram_emulator: TelegramEmulator) -> None:
    emu = telegram_emulator
    emu.set_admins(-200, [11], owner_id=10)
    emu.user_message(-200, "hi", chat_type="supergroup", user_id=12)
    async with bot_for(emu) as bot:
        owner = await bot.get_chat_member(-200, 10)
        admin = await bot.get_chat_member(-200, 11)
        member = await bot.get_chat_member(-200, 12)
        stranger = await bot.get_chat_member(-200, 13)
        admins = await bot.get_chat_administrators(-200)
        chat = await bot.get_chat(-200)
        with pytest.raises(BadRequest, match="no administrators in the private chat"):
            await bot.get_chat_administrators(12)
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.get_chat(-999)
    assert [m.status for m in (owner, admin, member, stranger)] == [
        "creator",
        "administrator",
        "member",
        "left",
    ]
    assert [m.user.id for m in admins] == [10, 11]
    assert chat.type == "supergroup"


async def test_send_chat_action_is_accepted(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        assert await bot.send_chat_action(1, "upload_photo")
        with pytest.raises(BadRequest, match="Wrong parameter action"):
            await bot.send_chat_action(1, "dancing")


async def test_strict_chats_reject_sends_to_chats_no_update_mentioned(
    telegram_emulator: TelegramEmulator,
) -> None:
    telegram_emulator.strict_chats = True
    telegram_emulator.user_message(1, "/start")
    async with bot_for(telegram_emulator) as bot:
        await bot.send_message(1, "welcome")
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(2, "who?")


# -- waiting ------------------------------------------------------------------------------------------------


async def test_successive_wait_for_calls_see_successive_replies(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        await bot.send_message(1, "first")
        await bot.send_message(2, "elsewhere")
        await bot.send_message(1, "second")
    assert [c.params["text"] for c in await telegram_emulator.wait_for(chat_id=1)] == ["first"]
    assert [c.params["text"] for c in await telegram_emulator.wait_for(chat_id=1)] == ["second"]
    assert [c.params["text"] for c in await telegram_emulator.wait_for(method="sendmessage")] == ["elsewhere"]


async def test_wait_for_timeout_lists_what_did_arrive(telegram_emulator: TelegramEmulator) -> None:
    async with bot_for(telegram_emulator) as bot:
        await bot.send_message(1, "RUT closed at 2,050")
    with pytest.raises(AssertionError, match=r"sendMessage chat=1 'RUT closed at 2,050' -> ok"):
        await telegram_emulator.wait_for(method="sendPhoto", timeout=0.05)


async def test_stopping_the_emulator_releases_a_waiting_long_poll() -> None:
    emu = TelegramEmulator()
    await emu.start()
    async with bot_for(emu) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=dtm.timedelta(seconds=30)))
        await emu.wait_until_polling()
        started = time.monotonic()
        await emu.stop()
        result = await poll
    assert result == ()
    assert time.monotonic() - started < 2
