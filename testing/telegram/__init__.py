"""A Telegram Bot API emulator that capgap's tests (and ``python -m bench``) talk real HTTP to.

The real python-telegram-bot stack (``Bot``/``Application`` with ``base_url=emu.base_url``) sends its
requests to an aiohttp server on 127.0.0.1, so PTB's own encoding, error mapping and polling loop run
exactly as they would against Telegram. Only the Bot API surface capgap uses is implemented; every other
method answers 400 with a description, the way Telegram answers a request it cannot serve.

Fixture
    ``telegram_emulator`` (async, function scoped): a started :class:`TelegramEmulator` for
    :data:`TEST_TOKEN`, stopped after the test; the test errors if a request crashed the emulator.

URLs
    ``emu.root`` (``http://127.0.0.1:PORT``), ``emu.base_url`` (``{root}/bot``) and
    ``emu.base_file_url`` (``{root}/file/bot``), shaped as PTB's ``base_url``/``base_file_url`` want them.

Driving the bot (synchronous; they only queue updates)
    ``emu.user_message(chat_id, text, *, user_id=None, chat_type="private", first_name="Ada",
    title=None, username=None) -> dict`` queues a message (a leading ``/cmd`` or ``/cmd@bot`` carries a
    ``bot_command`` entity) and returns the Update JSON.
    ``emu.press_button(chat_id, message_id, data, *, user_id=None) -> str`` queues a callback query for a
    button of a message the bot sent and returns the callback query id.
    ``emu.inline_query(user_id, query, *, chat_type="sender", first_name="Ada") -> str`` queues what a
    user typing ``@bot <query>`` sends (an ``inline_query`` update; the bot's inline mode is on) and
    returns the inline query id; ``emu.inline_answers`` maps it to the answerInlineQuery parameters.
    ``emu.queue_update(update) -> dict`` queues any Update JSON (its ``update_id`` is assigned).
    ``await emu.deliver_to_webhook(update, *, secret_token=REGISTERED, url=None) -> int`` POSTs an
    Update to the webhook URL the bot registered (with ``X-Telegram-Bot-Api-Secret-Token`` when there is
    a token) and returns the HTTP status; a 2xx answer removes the update from the pending queue.

Waiting for the bot (no sleeps: it waits on an event set by every recorded call)
    ``await emu.wait_for(predicate=None, *, chat_id=None, method=None, count=1, ok=True,
    timeout=10.0) -> list[ApiCall]`` returns the first ``count`` matching calls. Each call is handed
    out by at most one ``wait_for``, so successive waits see successive replies. ``ok=True`` matches
    only answered calls, ``ok=False`` only refused ones, ``ok=None`` both. ``getUpdates`` is only
    matched when ``method="getUpdates"`` is asked for. On timeout it raises ``AssertionError`` listing
    the calls that did arrive.
    ``await emu.wait_until_polling(*, timeout=10.0)`` returns once a getUpdates request is held open.

What the bot did
    ``emu.calls`` (list of :class:`ApiCall`: method, params, time, status, response, chat_id),
    ``emu.calls_to(chat_id)``, ``emu.sent`` (list of :class:`SentMessage`, one per send or edit),
    ``emu.sent_to(chat_id)``, ``emu.chat_messages(chat_id)`` (the bot's messages as they stand now,
    edits applied and deletions gone), ``emu.commands`` (the default command menu), ``emu.commands_for(
    scope=None, language_code="")``, ``emu.webhook`` (:class:`WebhookSetting`), ``emu.callback_answers``
    (callback query id -> answerCallbackQuery params), ``emu.pending_updates``,
    ``emu.too_many_requests`` (429s answered by the flood limits), ``emu.internal_errors``.

Shaping the world
    ``emu.add_chat(chat_id, *, chat_type=None, title=None, first_name=None, username=None) -> dict``,
    ``emu.set_admins(chat_id, admin_ids, *, owner_id=None)``, ``emu.strict_chats = True`` (sends to a
    chat no update mentioned answer 400 "chat not found"; by default such chats are created on first use).

Faults and limits
    ``emu.fail(method, status, *, times=1, chat_id=None, retry_after=None, description=None,
    migrate_to_chat_id=None)``: the next ``times`` matching calls (``times=None``: until
    ``emu.clear_faults()``) answer that error; ``migrate_to_chat_id`` puts the id in the error's
    ``parameters``, as Telegram answers a send to a group that became a supergroup.
    ``emu.block(chat_id)`` / ``emu.unblock(chat_id)``: sends, edits and deletions in that chat answer 403
    "Forbidden: bot was blocked by the user".
    ``emu.enforce_limits(global_per_second=30, per_chat_per_second=1, per_group_per_minute=20)`` /
    ``emu.disable_limits()``: sliding-window flood limits on sends; an excess send answers 429 with
    ``parameters.retry_after``.

Known simplifications: HTML is validated like Telegram (its own tag set and error texts); Markdown and
MarkdownV2 are accepted without validation. Lengths are counted in code points. Photos must be PNG, JPEG,
GIF, WebP or BMP bytes (or the file_id of one sent before), in sendPhoto and editMessageMedia alike;
URLs cannot be fetched. answerInlineQuery takes article and cached-photo results only. Webhook URLs may be plain HTTP because tests cannot present a certificate, and
updates reach a webhook only through ``deliver_to_webhook``.

Where things are: ``server`` (the aiohttp app, chats, messages, updates and the Bot API methods),
``html`` (Telegram's HTML dialect and entities), ``params`` (request decoding), ``media`` (image sniffing
and the file store), ``faults`` (``fail``, ``hold``, ``block``), ``limits`` (flood limits), ``calls``
(the call log and ``wait_for``), ``records`` (the records tests read and ``ApiError``).
"""

from testing.telegram.html import HtmlError, parse_html
from testing.telegram.media import MAX_PHOTO_BYTES
from testing.telegram.records import (
    BLOCKED,
    JSON,
    MAX_CALLBACK_DATA_BYTES,
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    REGISTERED,
    SECRET_TOKEN_HEADER,
    TEST_BOT_USERNAME,
    TEST_TOKEN,
    ApiCall,
    ApiError,
    SentMessage,
    UploadedFile,
    WebhookSetting,
)
from testing.telegram.server import TelegramEmulator, telegram_emulator_fixture

__all__ = [
    "BLOCKED",
    "JSON",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_CAPTION_LENGTH",
    "MAX_PHOTO_BYTES",
    "MAX_TEXT_LENGTH",
    "REGISTERED",
    "SECRET_TOKEN_HEADER",
    "TEST_BOT_USERNAME",
    "TEST_TOKEN",
    "ApiCall",
    "ApiError",
    "HtmlError",
    "SentMessage",
    "TelegramEmulator",
    "UploadedFile",
    "WebhookSetting",
    "parse_html",
    "telegram_emulator_fixture",
]
