"""A Telegram Bot API emulator that capgap's tests talk real HTTP to.

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
URLs cannot be fetched. Webhook URLs may be plain HTTP because tests cannot present a certificate, and
updates reach a webhook only through ``deliver_to_webhook``.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import math
import re
import struct
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

# The token tests/conftest.py gives the bot; deliberately not shaped like a real one (8-10 digits, a colon,
# 35 characters).
TEST_TOKEN: Final = "12345:capgap-test-token-not-a-real-one"
TEST_BOT_USERNAME: Final = "capgap_test_bot"

MAX_TEXT_LENGTH: Final = 4096
MAX_CAPTION_LENGTH: Final = 1024
MAX_CALLBACK_DATA_BYTES: Final = 64
MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024

SECRET_TOKEN_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"

JSON = dict[str, Any]


class _Registered(enum.Enum):
    SECRET = enum.auto()


REGISTERED: Final = _Registered.SECRET
"""Default of ``deliver_to_webhook(secret_token=...)``: the token the bot gave to setWebhook."""


# ---------------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One file part of a multipart request."""

    data: bytes
    filename: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request the bot made, as answered."""

    seq: int
    method: str
    params: JSON
    time: float
    status: int
    response: JSON
    chat_id: int | str | None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def description(self) -> str | None:
        return self.response.get("description")

    @property
    def result(self) -> Any:
        return self.response.get("result")

    def summary(self) -> str:
        what = self.params.get("text") or self.params.get("caption") or self.params.get("data") or ""
        if isinstance(what, str) and len(what) > 60:
            what = what[:57] + "..."
        answer = "ok" if self.ok else f"{self.status} {self.description}"
        chat = "" if self.chat_id is None else f" chat={self.chat_id}"
        return f"{self.method}{chat} {what!r} -> {answer}" if what else f"{self.method}{chat} -> {answer}"


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A bot message right after a send or an edit; ``text``/``caption`` are as the bot sent them."""

    method: str
    chat_id: int
    message_id: int
    text: str | None
    plain_text: str | None
    caption: str | None
    photo: bytes | None
    parse_mode: str | None
    reply_markup: JSON | None
    time: float
    message: JSON


@dataclass(frozen=True, slots=True)
class WebhookSetting:
    url: str = ""
    secret_token: str | None = None
    allowed_updates: tuple[str, ...] | None = None
    max_connections: int = 40
    ip_address: str | None = None


class ApiError(Exception):
    """An error answer, as Telegram shapes it."""

    def __init__(
        self,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        parameters: JSON = {}
        if self.retry_after is not None:
            parameters["retry_after"] = self.retry_after
        if self.migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = self.migrate_to_chat_id
        if parameters:
            body["parameters"] = parameters
        return body


def _bad(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


BLOCKED = "Forbidden: bot was blocked by the user"

_DEFAULT_DESCRIPTIONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass(slots=True)
class _Fault:
    method: str
    status: int
    remaining: int | None
    chat_id: int | str | None
    retry_after: int | None
    description: str
    migrate_to_chat_id: int | None = None


@dataclass(slots=True)
class _FloodLimits:
    global_per_second: int
    per_chat_per_second: int
    per_group_per_minute: int
    sends: deque[float] = field(default_factory=deque)
    chat_sends: dict[int | str, deque[float]] = field(default_factory=dict)
    group_sends: dict[int | str, deque[float]] = field(default_factory=dict)


@dataclass(slots=True)
class _StoredMessage:
    message: JSON
    latest: SentMessage | None  # None for messages users sent
    raw_text: str | None = None
    raw_caption: str | None = None
    parse_mode: str | None = None
    photo: bytes | None = None


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes


class _CallIndex:
    """Calls in arrival order, with a mark before which every call has been handed out."""

    __slots__ = ("calls", "start")

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.start = 0


# ---------------------------------------------------------------------------------------------------------
# Telegram's HTML dialect

_HTML_ENTITY_TYPES: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_NAMED_HTML_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TEXT_RUN = re.compile(r"[^<&]+")
# A named entity is the run of letters after "&" (tdlib's decode_html_entity stops at the first non-letter,
# so "&amp1" is "&" then "1").
_HTML_ENTITY = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([A-Za-z]+));?")
_HTML_SPACE: Final = frozenset(" \t\n\r\v\f")
_NAME_TOKEN_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


class HtmlError(ValueError):
    pass


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _decode_html_entity(html: str, pos: int) -> tuple[str, int] | None:
    match = _HTML_ENTITY.match(html, pos)
    if match is None:
        return None
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        char = _NAMED_HTML_ENTITIES.get(name)
        return None if char is None else (char, match.end())
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


def _decode_html_entities(text: str) -> str:
    if "&" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        decoded = _decode_html_entity(text, i) if text[i] == "&" else None
        if decoded is None:
            out.append(text[i])
            i += 1
        else:
            out.append(decoded[0])
            i = decoded[1]
    return "".join(out)


class _HtmlParser:
    """Telegram's parse_mode=HTML: the same tags, entities and error texts as the Bot API."""

    def __init__(self, html: str) -> None:
        self.html = html
        self.pieces: list[str] = []
        self.offset = 0  # in UTF-16 code units, as entity offsets are
        self.open_tags: list[tuple[str, str, int, bool]] = []  # tag, argument, offset, expandable
        self.entities: list[JSON] = []

    def byte_offset(self, pos: int) -> int:
        return len(self.html[:pos].encode("utf-8", "surrogatepass"))

    def emit(self, text: str) -> None:
        self.pieces.append(text)
        self.offset += _utf16_len(text)

    def parse(self) -> tuple[str, list[JSON]]:
        html, i, n = self.html, 0, len(self.html)
        while i < n:
            run = _HTML_TEXT_RUN.match(html, i)
            if run is not None:
                self.emit(run.group())
                i = run.end()
            elif html[i] == "&":
                decoded = _decode_html_entity(html, i)
                # Telegram keeps a lone ampersand as text rather than rejecting the message: the Bot API
                # parses HTML with tdlib, whose decode_html_entity returns 0 for "&" not starting lt, gt,
                # amp, quot or a numeric reference ("unsupported literal entity"), and parse_html then
                # keeps the "&" as a character (tdlib/td td/telegram/MessageEntity.cpp). So "S&P 500"
                # arrives whole; only a tag-like "<" is refused. The Bot API docs still ask for every
                # such "&" as &amp; (core.telegram.org/bots/api#html-style), and capgap escapes them.
                char, i = decoded if decoded is not None else ("&", i + 1)
                self.emit(char)
            elif i + 1 < n and html[i + 1] == "/":
                i = self.close_tag(i)
            else:
                i = self.open_tag(i)
        if self.open_tags:
            raise HtmlError(f'Can\'t find end tag corresponding to start tag "{self.open_tags[-1][0]}"')
        for entity in self.entities:
            entity.pop("_language", None)
        self.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(self.pieces), self.entities

    def skip_spaces(self, i: int) -> int:
        while i < len(self.html) and self.html[i] in _HTML_SPACE:
            i += 1
        return i

    def open_tag(self, begin: int) -> int:
        html, n = self.html, len(self.html)
        where = f"at byte offset {self.byte_offset(begin)}"
        i = begin + 1
        while i < n and html[i] not in _HTML_SPACE and html[i] != ">":
            i += 1
        if i >= n:
            raise HtmlError(f"Unclosed start tag {where}")
        tag = html[begin + 1 : i].lower()
        if tag not in _HTML_ENTITY_TYPES:
            raise HtmlError(f'Unsupported start tag "{tag}" {where}')
        argument = ""
        expandable = False
        while True:
            i = self.skip_spaces(i)
            if i >= n:
                raise HtmlError(f"Unclosed start tag {where}")
            if html[i] == ">":
                break
            name_begin = i
            while i < n and html[i] not in _HTML_SPACE and html[i] not in "=>":
                i += 1
            name = html[name_begin:i].lower()
            if not name:
                raise HtmlError(f'Empty attribute name in the tag "{tag}" {where}')
            i = self.skip_spaces(i)
            if i >= n:
                raise HtmlError(f"Unclosed start tag {where}")
            if html[i] != "=":
                if tag == "blockquote" and name == "expandable":
                    expandable = True
                    continue
                raise HtmlError(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" {where}'
                )
            i = self.skip_spaces(i + 1)
            if i >= n:
                raise HtmlError(f"Unclosed start tag {where}")
            if html[i] in "\"'":
                end = html.find(html[i], i + 1)
                if end < 0:
                    raise HtmlError(f"Unclosed start tag {where}")
                value = _decode_html_entities(html[i + 1 : end])
                i = end + 1
            else:
                token_begin = i
                while i < n and html[i] in _NAME_TOKEN_CHARS:
                    i += 1
                value = html[token_begin:i].lower()
                if i >= n or (html[i] not in _HTML_SPACE and html[i] != ">"):
                    raise HtmlError(
                        f"Unexpected end of name token at byte offset {self.byte_offset(token_begin)}"
                    )
            if (tag == "a" and name == "href") or (tag == "span" and name == "class"):
                argument = value
            elif tag == "code" and name == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif tag == "blockquote" and name == "expandable":
                expandable = True
        if tag == "span" and argument != "tg-spoiler":
            raise HtmlError(f'Tag "span" must have class "tg-spoiler" {where}')
        self.open_tags.append((tag, argument, self.offset, expandable))
        return i + 1

    def close_tag(self, begin: int) -> int:
        html, n = self.html, len(self.html)
        where = f"at byte offset {self.byte_offset(begin)}"
        if not self.open_tags:
            raise HtmlError(f"Unexpected end tag {where}")
        i = begin + 2
        while i < n and html[i] not in _HTML_SPACE and html[i] != ">":
            i += 1
        name = html[begin + 2 : i].lower()
        i = self.skip_spaces(i)
        if i >= n or html[i] != ">":
            raise HtmlError(f"Unclosed end tag {where}")
        tag, argument, start, expandable = self.open_tags[-1]
        if name and name != tag:
            raise HtmlError(f'Unmatched end tag {where}, expected "</{tag}>", found "</{name}>"')
        self.open_tags.pop()
        length = self.offset - start
        if length > 0:
            self.add_entity(tag, argument, start, length, expandable)
        return i + 1

    def add_entity(self, tag: str, argument: str, start: int, length: int, expandable: bool) -> None:
        kind = _HTML_ENTITY_TYPES[tag]
        entity: JSON = {"type": kind, "offset": start, "length": length}
        if kind == "text_link":
            if not argument:
                return
            entity["url"] = argument
        elif kind == "code" and argument:
            entity["_language"] = argument
        elif kind == "pre":
            inner = self.entities[-1] if self.entities else None
            if inner and inner["type"] == "code" and (inner["offset"], inner["length"]) == (start, length):
                # <pre><code class="language-x"> is one pre entity carrying the language.
                self.entities.pop()
                if "_language" in inner:
                    entity["language"] = inner["_language"]
        elif kind == "blockquote" and expandable:
            entity["type"] = "expandable_blockquote"
        self.entities.append(entity)


def parse_html(html: str) -> tuple[str, list[JSON]]:
    """Return the text a user sees and its entities, or raise HtmlError with Telegram's wording."""
    return _HtmlParser(html).parse()


# ---------------------------------------------------------------------------------------------------------
# Request parameters

# PTB sends these JSON-encoded inside form fields.
_JSON_FIELDS: Final = frozenset(
    {
        "reply_markup",
        "commands",
        "allowed_updates",
        "scope",
        "entities",
        "caption_entities",
        "reply_parameters",
        "link_preview_options",
        "media",
    }
)
_INT_FIELDS: Final = frozenset(
    {"offset", "limit", "message_id", "user_id", "max_connections", "message_thread_id", "cache_time"}
)
_FLOAT_FIELDS: Final = frozenset({"timeout"})
_BOOL_FIELDS: Final = frozenset(
    {
        "drop_pending_updates",
        "disable_notification",
        "protect_content",
        "show_alert",
        "allow_sending_without_reply",
        "has_spoiler",
        "show_caption_above_media",
        "disable_web_page_preview",
        "only_if_banned",
        "allow_paid_broadcast",
    }
)
_INTEGER = re.compile(r"-?[0-9]+")


def _coerce(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {name} JSON object") from None
    if name == "chat_id":
        return int(value) if _INTEGER.fullmatch(value) else value
    try:
        if name in _INT_FIELDS:
            return int(value)
        if name in _FLOAT_FIELDS:
            return float(value)
    except ValueError:
        raise _bad(f"invalid {name} specified") from None
    if name in _BOOL_FIELDS:
        return value.lower() in ("true", "1")
    return value


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG, (0, 0) for other images, None for what is not an image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
        return 0, 0
    if data.startswith((b"GIF87a", b"GIF89a", b"BM")) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return 0, 0
    return None


_SEND_METHODS: Final = frozenset({"sendMessage", "sendPhoto"})
_CHAT_WRITE_METHODS: Final = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendChatAction",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageMedia",
        "deleteMessage",
    }
)
_CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Telegram leaves these out unless allowed_updates names them.
_OPT_IN_UPDATES: Final = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_LEADING_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_DEFAULT_SCOPE: Final = json.dumps({"type": "default"})
_SUPERSEDED = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same as a "
    "current content and reply markup of the message"
)

_Handler = Callable[[JSON], Awaitable[Any]]


# ---------------------------------------------------------------------------------------------------------
# The emulator


class TelegramEmulator:
    """One bot's view of the Telegram Bot API, served on 127.0.0.1; see the module docstring."""

    def __init__(self, token: str = TEST_TOKEN, *, bot_username: str = TEST_BOT_USERNAME) -> None:
        self.token = token
        bot_id = token.split(":", 1)[0]
        self.bot_user: JSON = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "capgap test bot",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.strict_chats = False
        self.root = ""
        self.calls: list[ApiCall] = []
        self.sent: list[SentMessage] = []
        self.callback_answers: dict[str, JSON] = {}
        self.too_many_requests = 0
        self.internal_errors: list[str] = []

        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._closing = False
        self._methods: dict[str, tuple[str, _Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "editMessageMedia": self._edit_message_media,
                "answerCallbackQuery": self._answer_callback_query,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendChatAction": self._send_chat_action,
                "getChat": self._get_chat,
                "getChatMember": self._get_chat_member,
                "getChatAdministrators": self._get_chat_administrators,
                "deleteMessage": self._delete_message,
                "getFile": self._get_file,
            }.items()
        }

        # Updates
        self._pending: deque[JSON] = deque()
        self._update_ids = itertools.count(700_000_001)
        self._callback_ids = itertools.count(4_200_000_001)
        self._allowed_updates: tuple[str, ...] = ()
        self._updates_signal = asyncio.Event()
        self._poll_generation = 0
        self._held_polls = 0
        self._held_polls_signal = asyncio.Event()

        # Chats and messages, indexed by chat so nothing scans every message
        self._chats: dict[int | str, JSON] = {}
        self._chats_by_username: dict[str, JSON] = {}
        self._users: dict[int, JSON] = {}
        self._members: dict[int | str, set[int]] = {}
        self._admins: dict[int | str, tuple[int | None, tuple[int, ...]]] = {}
        self._messages: dict[int | str, dict[int, _StoredMessage]] = {}
        self._next_message_id: dict[int | str, int] = {}
        self._sent_by_chat: dict[int | str, list[SentMessage]] = {}
        self._callback_queries: dict[str, JSON] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}

        # Bot settings
        self._command_menus: dict[tuple[str, str], list[JSON]] = {}
        self._webhook = WebhookSetting()

        # Faults and limits
        self._faults: list[_Fault] = []
        self._holds: list[tuple[str, int | None]] = []
        self._release = asyncio.Event()
        self._held_signal = asyncio.Event()
        self.held = 0
        self._blocked: set[int | str] = set()
        self._limits: _FloodLimits | None = None

        # Calls, indexed for wait_for
        self._call_seq = itertools.count()
        self._calls_signal = asyncio.Event()
        self._handed_out: set[int] = set()
        self._calls_by_method: dict[str, _CallIndex] = {}
        self._calls_by_chat: dict[int | str, _CallIndex] = {}
        self._calls_not_polling = _CallIndex()

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.root}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.root}/file/bot"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown_path)
        # No access log: every URL carries the bot token. Cancelling handlers of dropped connections
        # releases long polls that PTB abandons when it stops.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.root = f"http://{host}:{port}"

    async def stop(self) -> None:
        self._closing = True
        self._wake_pollers()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- driving the bot -------------------------------------------------------------------------------------

    def add_chat(
        self,
        chat_id: int,
        *,
        chat_type: str | None = None,
        title: str | None = None,
        first_name: str | None = None,
        username: str | None = None,
    ) -> JSON:
        """Declare a chat (or update one); returns its Chat JSON."""
        if chat_type is None:
            known = self._chats.get(chat_id)
            chat_type = known["type"] if known else self._implied_chat_type(chat_id)
        chat: JSON = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name or f"User {chat_id}"
        else:
            chat["title"] = title or f"Chat {chat_id}"
        if username:
            chat["username"] = username
            self._chats_by_username[username.lower()] = chat
        self._chats[chat_id] = chat
        return chat

    def set_admins(self, chat_id: int, admin_ids: Iterable[int], *, owner_id: int | None = None) -> None:
        """Declare who administers a group chat (getChatMember/getChatAdministrators answer from this)."""
        if chat_id not in self._chats:
            self.add_chat(chat_id, chat_type="supergroup" if chat_id < 0 else "group")
        admins = tuple(admin_id for admin_id in admin_ids if admin_id != owner_id)
        self._admins[chat_id] = (owner_id, admins)
        members = self._members.setdefault(chat_id, set())
        members.update(admins)
        if owner_id is not None:
            members.add(owner_id)

    def user_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: Literal["private", "group", "supergroup", "channel"] = "private",
        first_name: str = "Ada",
        title: str | None = None,
        username: str | None = None,
    ) -> JSON:
        """Queue a message a user wrote in a chat; returns the Update JSON."""
        if not text:
            raise ValueError("a user message needs text")
        if chat_type == "private":
            if user_id is not None and user_id != chat_id:
                raise ValueError("in a private chat the chat id is the user id")
            user_id = chat_id
        elif user_id is None:
            user_id = 10_001
        known = self._chats.get(chat_id)
        if known is None or known["type"] != chat_type or (title and known.get("title") != title):
            chat = self.add_chat(chat_id, chat_type=chat_type, title=title, first_name=first_name)
        else:
            chat = known
        message: JSON = {
            "message_id": self._new_message_id(chat_id),
            "date": int(time.time()),
            "chat": chat,
            "text": text,
        }
        if chat_type == "channel":
            message["sender_chat"] = chat
            kind = "channel_post"
        else:
            message["from"] = self._user(user_id, first_name, username)
            self._members.setdefault(chat_id, set()).add(user_id)
            kind = "message"
        command = _LEADING_COMMAND.match(text)
        if command is not None:
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command.group())}
            ]
        self._messages.setdefault(chat_id, {})[message["message_id"]] = _StoredMessage(message, None)
        return self.queue_update({kind: message})

    def press_button(
        self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None, forged: bool = False
    ) -> str:
        """Queue a press on an inline button of a bot message; returns the callback query id.

        ``forged=True`` sends ``data`` even though no button carries it, as a tampering client can:
        Telegram relays whatever callback data the client sends.
        """
        stored = self._messages.get(chat_id, {}).get(message_id)
        if stored is None or stored.latest is None:
            raise ValueError(f"the bot has no message {message_id} in chat {chat_id}")
        buttons = [
            button
            for row in (stored.message.get("reply_markup") or {}).get("inline_keyboard", [])
            for button in row
        ]
        if not forged and not any(button.get("callback_data") == data for button in buttons):
            offered = [button.get("callback_data") for button in buttons]
            raise ValueError(f"message {message_id} has no button with data {data!r}; it offers {offered}")
        chat = stored.message["chat"]
        if user_id is None:
            user_id = chat_id if chat["type"] == "private" else 10_001
        query_id = str(next(self._callback_ids))
        query: JSON = {
            "id": query_id,
            "from": self._users.get(user_id) or self._user(user_id, "Ada", None),
            "message": stored.message,
            "chat_instance": f"instance-{chat_id}",
            "data": data,
        }
        self._callback_queries[query_id] = query
        self.queue_update({"callback_query": query})
        return query_id

    def queue_update(self, update: Mapping[str, Any]) -> JSON:
        """Queue an Update for getUpdates; its update_id is assigned here."""
        queued = {
            "update_id": next(self._update_ids),
            **{k: v for k, v in update.items() if k != "update_id"},
        }
        self._pending.append(queued)
        self._wake_pollers()
        return queued

    @property
    def pending_updates(self) -> list[JSON]:
        return list(self._pending)

    async def deliver_to_webhook(
        self,
        update: Mapping[str, Any],
        *,
        secret_token: str | Literal[_Registered.SECRET] | None = REGISTERED,
        url: str | None = None,
    ) -> int:
        """POST an Update to the bot's webhook; returns the HTTP status it answered."""
        target = url or self._webhook.url
        if not target:
            raise RuntimeError("no webhook is set: the bot has not called setWebhook, and no url= was given")
        token = self._webhook.secret_token if secret_token is REGISTERED else secret_token
        headers = {"Content-Type": "application/json"}
        if token:
            headers[SECRET_TOKEN_HEADER] = token
        if self._client is None:
            self._client = aiohttp.ClientSession()
        async with self._client.post(target, data=json.dumps(dict(update)), headers=headers) as response:
            await response.read()
            status = response.status
        if 200 <= status < 300 and "update_id" in update:
            # Telegram forgets an update once the webhook has taken it; deliveries in order stay O(1).
            if self._pending and self._pending[0]["update_id"] == update["update_id"]:
                self._pending.popleft()
            else:
                self._pending = deque(u for u in self._pending if u["update_id"] != update["update_id"])
        return status

    # -- what the bot did ------------------------------------------------------------------------------------

    def calls_to(self, chat_id: int | str) -> list[ApiCall]:
        index = self._calls_by_chat.get(chat_id)
        return list(index.calls) if index else []

    def sent_to(self, chat_id: int | str) -> list[SentMessage]:
        return list(self._sent_by_chat.get(chat_id, ()))

    def chat_messages(self, chat_id: int | str) -> list[SentMessage]:
        """The bot's messages in a chat as they stand now: edits applied, deleted ones gone."""
        return [m.latest for m in self._messages.get(chat_id, {}).values() if m.latest is not None]

    @property
    def commands(self) -> list[JSON]:
        """The command menu for the default scope and no language."""
        return self.commands_for()

    def commands_for(self, scope: Mapping[str, Any] | None = None, language_code: str = "") -> list[JSON]:
        key = json.dumps(dict(scope), sort_keys=True) if scope else _DEFAULT_SCOPE
        return list(self._command_menus.get((key, language_code), ()))

    @property
    def webhook(self) -> WebhookSetting:
        return self._webhook

    async def wait_for(
        self,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        chat_id: int | str | None = None,
        method: str | None = None,
        count: int = 1,
        ok: bool | None = True,
        timeout: float = 10.0,  # noqa: ASYNC109 - how long the bot may take, part of the test-facing API
    ) -> list[ApiCall]:
        """Wait until ``count`` matching calls, not returned by an earlier wait_for, have arrived."""
        wanted_method = method.lower() if method else None
        # A chat's calls are usually far fewer than a method's, so waiting per chat stays cheap after a
        # broadcast to thousands of chats.
        if chat_id is not None:
            index = self._calls_by_chat.setdefault(chat_id, _CallIndex())
        elif wanted_method:
            index = self._calls_by_method.setdefault(wanted_method, _CallIndex())
        else:
            index = self._calls_not_polling

        def matches(call: ApiCall) -> bool:
            return (
                (chat_id is None or call.chat_id == chat_id)
                and (wanted_method is None or call.method.lower() == wanted_method)
                and (ok is None or call.ok == ok)
                and (predicate is None or predicate(call))
            )

        found: list[ApiCall] = []
        position = index.start
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while index.start < len(index.calls) and index.calls[index.start].seq in self._handed_out:
                        index.start += 1
                    position = max(position, index.start)
                    while position < len(index.calls) and len(found) < count:
                        call = index.calls[position]
                        position += 1
                        if call.seq not in self._handed_out and matches(call):
                            # Reserved now so that a concurrent wait_for cannot return it too.
                            self._handed_out.add(call.seq)
                            found.append(call)
                    if len(found) >= count:
                        return found
                    await self._calls_signal.wait()
        except TimeoutError:
            self._handed_out.difference_update(call.seq for call in found)
            raise AssertionError(self._describe_timeout(found, count, chat_id, method, ok, timeout)) from None

    async def wait_until_polling(self, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - as wait_for
        """Wait until a getUpdates request is being held open for updates."""
        try:
            async with asyncio.timeout(timeout):
                while self._held_polls == 0:
                    await self._held_polls_signal.wait()
        except TimeoutError:
            raise AssertionError(f"no getUpdates request was held open within {timeout}s") from None

    def _describe_timeout(
        self,
        found: list[ApiCall],
        count: int,
        chat_id: object,
        method: str | None,
        ok: bool | None,
        timeout: float,
    ) -> str:
        criteria = ", ".join(
            f"{name}={value!r}"
            for name, value in (("method", method), ("chat_id", chat_id), ("ok", ok))
            if value is not None
        )
        unclaimed = [call for call in self._calls_not_polling.calls[-30:] if call.seq not in self._handed_out]
        lines = [f"waited {timeout}s for {count} call(s) ({criteria or 'any'}), {len(found)} matched."]
        if unclaimed:
            lines.append("Calls that arrived and no wait_for took (latest 30, getUpdates left out):")
            lines.extend(f"  {call.summary()}" for call in unclaimed)
        else:
            lines.append("No call besides getUpdates arrived that an earlier wait_for had not taken.")
        return "\n".join(lines)

    # -- faults and limits ----------------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        *,
        times: int | None = 1,
        chat_id: int | str | None = None,
        retry_after: int | None = None,
        description: str | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (for ``chat_id`` if given) with an error."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if status == 429
                else _DEFAULT_DESCRIPTIONS.get(status)
            )
        if description is None:
            raise ValueError(f"give a description for status {status}")
        self._faults.append(
            _Fault(method.lower(), status, times, chat_id, retry_after, description, migrate_to_chat_id)
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def hold(self, method: str, *, chat_id: int | None = None) -> None:
        """Keep matching requests waiting, unanswered, until ``release()``: a bot can be killed mid-request."""
        self._holds.append((method.lower(), chat_id))

    async def wait_held(self, count: int = 1, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until ``count`` requests are being held."""
        try:
            async with asyncio.timeout(timeout):
                while self.held < count:
                    await self._held_signal.wait()
                    self._held_signal.clear()
        except TimeoutError:
            raise AssertionError(f"{self.held} request(s) held after {timeout} s, wanted {count}") from None

    def release(self) -> None:
        """Let held requests go on (those whose client disconnected are dropped) and hold no more."""
        self._holds.clear()
        self._release.set()
        self._release = asyncio.Event()

    async def _wait_if_held(self, request: web.Request, method: str, chat_id: object) -> bool:
        if not any(m == method.lower() and (c is None or c == chat_id) for m, c in self._holds):
            return True
        release = self._release
        self.held += 1
        self._held_signal.set()
        try:
            await release.wait()
        finally:
            self.held -= 1
        transport = request.transport
        return transport is not None and not transport.is_closing()

    def block(self, chat_id: int | str) -> None:
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int | str) -> None:
        self._blocked.discard(chat_id)

    def enforce_limits(
        self, *, global_per_second: int = 30, per_chat_per_second: int = 1, per_group_per_minute: int = 20
    ) -> None:
        self._limits = _FloodLimits(global_per_second, per_chat_per_second, per_group_per_minute)

    def disable_limits(self) -> None:
        self._limits = None

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        asked = request.match_info["method"]
        entry = self._methods.get(asked.lower())
        method = entry[0] if entry else asked
        params: JSON = {}
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(404, "Not Found")
            params = await self._read_params(request)
            if entry is None:
                raise _bad(f'method "{asked}" not found')
            if self._holds and not await self._wait_if_held(request, method, params.get("chat_id")):
                # The client went away while the request was held (the bot was killed): like a request
                # Telegram never received, it changes nothing.
                return web.Response(status=499)
            self._inject_faults(method, params.get("chat_id"))
            if method in _CHAT_WRITE_METHODS and params.get("chat_id") in self._blocked:
                raise ApiError(403, BLOCKED)
            status, body = 200, {"ok": True, "result": await entry[1](params)}
        except ApiError as error:
            status, body = error.status, error.body()
        except Exception:
            self.internal_errors.append(traceback.format_exc())
            status = 500
            body = {"ok": False, "error_code": 500, "description": "Internal Server Error: emulator crashed"}
        self._record(method, params, status, body)
        return web.Response(body=json.dumps(body), status=status, content_type="application/json")

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self._files_by_path.get(request.match_info["file_path"])
        if request.match_info["token"] != self.token or stored is None:
            return self._not_found()
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _handle_unknown_path(self, request: web.Request) -> web.Response:
        return self._not_found()

    @staticmethod
    def _not_found() -> web.Response:
        body = ApiError(404, "Not Found").body()
        return web.Response(body=json.dumps(body), status=404, content_type="application/json")

    async def _read_params(self, request: web.Request) -> JSON:
        params: JSON = {name: _coerce(name, value) for name, value in request.query.items()}
        if not request.body_exists:
            return params
        content_type = request.content_type
        if content_type == "application/x-www-form-urlencoded":
            body = (await request.read()).decode("utf-8", "surrogateescape")
            params.update(
                (name, _coerce(name, value)) for name, value in parse_qsl(body, keep_blank_values=True)
            )
        elif content_type == "multipart/form-data":
            files: dict[str, UploadedFile] = {}
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                    continue
                if part.filename is None:
                    params[part.name] = _coerce(part.name, await part.text())
                else:
                    data = bytes(await part.read(decode=True))
                    upload = UploadedFile(data, part.filename, part.headers.get(aiohttp.hdrs.CONTENT_TYPE))
                    files[part.name] = params[part.name] = upload
            for name, value in params.items():
                if isinstance(value, str) and value.startswith("attach://"):
                    params[name] = files.get(value.removeprefix("attach://"), value)
        elif content_type == "application/json":
            try:
                decoded = json.loads(await request.read())
            except ValueError:
                raise _bad("can't parse JSON object") from None
            if not isinstance(decoded, dict):
                raise _bad("JSON object expected")
            params.update((name, _coerce(name, value)) for name, value in decoded.items())
        return params

    def _inject_faults(self, method: str, chat_id: object) -> None:
        if not self._faults:
            return
        lowered = method.lower()
        for fault in self._faults:
            if fault.method == lowered and (fault.chat_id is None or fault.chat_id == chat_id):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                raise ApiError(
                    fault.status,
                    fault.description,
                    retry_after=fault.retry_after,
                    migrate_to_chat_id=fault.migrate_to_chat_id,
                )

    def _record(self, method: str, params: JSON, status: int, body: JSON) -> None:
        chat_id = params.get("chat_id")
        call = ApiCall(next(self._call_seq), method, params, time.monotonic(), status, body, chat_id)
        self.calls.append(call)
        self._calls_by_method.setdefault(method.lower(), _CallIndex()).calls.append(call)
        if chat_id is not None:
            self._calls_by_chat.setdefault(chat_id, _CallIndex()).calls.append(call)
        if method != "getUpdates":
            self._calls_not_polling.calls.append(call)
        self._calls_signal.set()
        self._calls_signal = asyncio.Event()

    def _wake_pollers(self) -> None:
        self._updates_signal.set()
        self._updates_signal = asyncio.Event()

    # -- chats, users, messages -----------------------------------------------------------------------------

    @staticmethod
    def _implied_chat_type(chat_id: int | str) -> str:
        if isinstance(chat_id, str):
            return "channel"
        if chat_id > 0:
            return "private"
        return "supergroup" if chat_id <= -1_000_000_000_000 else "group"

    def _user(self, user_id: int, first_name: str, username: str | None) -> JSON:
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
        if username:
            user["username"] = username
        self._users[user_id] = user
        return user

    def _target_chat(self, params: JSON) -> JSON:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if isinstance(chat_id, str):
            chat = self._chats_by_username.get(chat_id.removeprefix("@").lower())
            if chat is None:
                raise _bad("chat not found")
            return chat
        chat = self._chats.get(chat_id)
        if chat is None:
            if self.strict_chats:
                raise _bad("chat not found")
            chat = self.add_chat(chat_id)
        return chat

    def _new_message_id(self, chat_id: int | str) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _stored_message(self, params: JSON, action: str) -> _StoredMessage:
        if "inline_message_id" in params:
            raise _bad(f"message to {action} not found")
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _bad("message identifier is not specified")
        stored = self._messages.get(chat["id"], {}).get(message_id)
        if stored is None:
            raise _bad(f"message to {action} not found")
        if stored.latest is None and action == "edit":
            raise _bad("message can't be edited")
        return stored

    def _remember(self, method: str, stored: _StoredMessage, reply_markup: JSON | None) -> SentMessage:
        message = stored.message
        record = SentMessage(
            method=method,
            chat_id=message["chat"]["id"],
            message_id=message["message_id"],
            text=stored.raw_text,
            plain_text=message.get("text"),
            caption=stored.raw_caption,
            photo=stored.photo,
            parse_mode=stored.parse_mode,
            reply_markup=reply_markup,
            time=time.monotonic(),
            message=message,
        )
        stored.latest = record
        self.sent.append(record)
        self._sent_by_chat.setdefault(record.chat_id, []).append(record)
        return record

    def _formatted(self, text: str, parse_mode: str | None, entities: Any) -> tuple[str, list[JSON]]:
        mode = (parse_mode or "").lower()
        if mode == "html":
            try:
                return parse_html(text)
            except HtmlError as error:
                raise _bad(f"can't parse entities: {error}") from None
        if mode in ("", "markdown", "markdownv2"):
            return text, list(entities) if isinstance(entities, list) else []
        raise _bad("unsupported parse_mode")

    @staticmethod
    def _checked_markup(markup: Any) -> JSON | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        for button in itertools.chain.from_iterable(rows):
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad('can\'t find field "text"')
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                raise _bad("BUTTON_DATA_INVALID")
            if set(button) <= {"text"}:
                raise _bad("text buttons are unallowed in the inline keyboard")
        return markup

    def _reply_target(self, chat: JSON, params: JSON) -> JSON | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id, lenient = reply.get("message_id"), bool(reply.get("allow_sending_without_reply"))
        elif "reply_to_message_id" in params:
            message_id = _coerce("message_id", params["reply_to_message_id"])
            lenient = bool(params.get("allow_sending_without_reply"))
        else:
            return None
        stored = self._messages.get(chat["id"], {}).get(message_id) if isinstance(message_id, int) else None
        if stored is None:
            if lenient:
                return None
            raise _bad("message to be replied not found")
        return {k: v for k, v in stored.message.items() if k != "reply_to_message"}

    def _take_send_slot(self, chat: JSON) -> None:
        limits = self._limits
        if limits is None:
            return
        now = time.monotonic()
        chat_id = chat["id"]
        windows = [
            (limits.sends, 1.0, limits.global_per_second),
            (limits.chat_sends.setdefault(chat_id, deque()), 1.0, limits.per_chat_per_second),
        ]
        if chat["type"] in ("group", "supergroup"):
            windows.append(
                (limits.group_sends.setdefault(chat_id, deque()), 60.0, limits.per_group_per_minute)
            )
        wait = 0.0
        for sends, span, allowed in windows:
            while sends and sends[0] <= now - span:
                sends.popleft()
            if len(sends) >= allowed:
                wait = max(wait, sends[0] + span - now)
        if wait > 0:
            self.too_many_requests += 1
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
        for sends, _span, _allowed in windows:
            sends.append(now)

    def _new_bot_message(self, chat: JSON, fields: JSON, markup: JSON | None, reply_to: JSON | None) -> JSON:
        message: JSON = {
            "message_id": self._new_message_id(chat["id"]),
            "from": self.bot_user,
            "chat": chat,
            "date": int(time.time()),
            **fields,
        }
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _photo_bytes(self, photo: Any) -> bytes:
        if isinstance(photo, UploadedFile):
            data = photo.data
        elif isinstance(photo, str) and photo in self._files:
            data = self._files[photo].data
        elif isinstance(photo, str) and photo:
            raise _bad("wrong file identifier/HTTP URL specified")
        else:
            raise _bad("there is no photo in the request")
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad("file is too big")
        return data

    def _store_file(self, data: bytes, extension: str) -> _StoredFile:
        number = len(self._files) + 1
        stored = _StoredFile(
            f"emu-photo-{number}", f"emu-unique-{number}", f"photos/file_{number}.{extension}", data
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    # -- methods ---------------------------------------------------------------------------------------------

    async def _get_me(self, params: JSON) -> JSON:
        return self.bot_user

    async def _get_updates(self, params: JSON) -> list[JSON]:
        if self._webhook.url:
            raise ApiError(409, _WEBHOOK_ACTIVE)
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            while self._pending and self._pending[0]["update_id"] < offset:
                self._pending.popleft()
        elif isinstance(offset, int) and offset < 0:
            while len(self._pending) > -offset:
                self._pending.popleft()
        limit = min(max(params.get("limit", 100), 1), 100)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = tuple(allowed)
        timeout = max(float(params.get("timeout", 0)), 0.0)

        # A newer getUpdates ends an older one still waiting, as Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(409, _SUPERSEDED)
            updates = self._deliverable(limit)
            if updates or self._closing:
                return updates
            signal = self._updates_signal
            self._held_polls += 1
            self._held_polls_signal.set()
            self._held_polls_signal = asyncio.Event()
            try:
                async with asyncio.timeout_at(deadline):
                    await signal.wait()
            except TimeoutError:
                return []
            finally:
                self._held_polls -= 1

    def _deliverable(self, limit: int) -> list[JSON]:
        allowed = set(self._allowed_updates)
        updates: list[JSON] = []
        for update in self._pending:
            kind = next(key for key in update if key != "update_id")
            if (kind in allowed) if allowed else (kind not in _OPT_IN_UPDATES):
                updates.append(update)
                if len(updates) == limit:
                    break
        return updates

    def _message_text(self, params: JSON) -> tuple[str, Any, str, list[JSON]]:
        """A sent or edited text as Telegram checks it: present, parsed, not blank, not too long."""
        raw = params.get("text")
        if not isinstance(raw, str) or not raw:
            raise _bad("message text is empty")
        parse_mode = params.get("parse_mode")
        text, entities = self._formatted(raw, parse_mode, params.get("entities"))
        if not text.strip():
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise _bad("message is too long")
        return raw, parse_mode, text, entities

    async def _send_message(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        raw, parse_mode, text, entities = self._message_text(params)
        markup = self._checked_markup(params.get("reply_markup"))
        reply_to = self._reply_target(chat, params)
        self._take_send_slot(chat)
        fields: JSON = {"text": text}
        if entities:
            fields["entities"] = entities
        message = self._new_bot_message(chat, fields, markup, reply_to)
        stored = _StoredMessage(message, None, raw_text=raw, parse_mode=parse_mode)
        self._messages.setdefault(chat["id"], {})[message["message_id"]] = stored
        self._remember("sendMessage", stored, markup)
        return message

    async def _send_photo(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        data = self._photo_bytes(params.get("photo"))
        size = _image_size(data)
        if size is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        raw_caption = params.get("caption") or None
        parse_mode = params.get("parse_mode")
        fields: JSON = {}
        if raw_caption is not None:
            caption, entities = self._formatted(raw_caption, parse_mode, params.get("caption_entities"))
            if len(caption) > MAX_CAPTION_LENGTH:
                raise _bad("message caption is too long")
            fields["caption"] = caption
            if entities:
                fields["caption_entities"] = entities
        markup = self._checked_markup(params.get("reply_markup"))
        reply_to = self._reply_target(chat, params)
        self._take_send_slot(chat)
        stored_file = self._store_file(data, "png" if data.startswith(b"\x89PNG") else "jpg")
        fields["photo"] = [
            {
                "file_id": stored_file.file_id,
                "file_unique_id": stored_file.file_unique_id,
                "width": size[0],
                "height": size[1],
                "file_size": len(data),
            }
        ]
        message = self._new_bot_message(chat, fields, markup, reply_to)
        stored = _StoredMessage(message, None, raw_caption=raw_caption, parse_mode=parse_mode, photo=data)
        self._messages.setdefault(chat["id"], {})[message["message_id"]] = stored
        self._remember("sendPhoto", stored, markup)
        return message

    def _edited(
        self, method: str, stored: _StoredMessage, changes: JSON, markup: JSON | None, **raw: str | None
    ) -> JSON:
        old = stored.message
        inline_markup = markup if markup is not None and "inline_keyboard" in markup else None
        unchanged = all(old.get(key) == value for key, value in changes.items())
        if unchanged and old.get("reply_markup") == inline_markup:
            raise _bad(_NOT_MODIFIED)
        message = {k: v for k, v in old.items() if k not in changes and k != "reply_markup"}
        message.update((key, value) for key, value in changes.items() if value)
        if inline_markup is not None:
            message["reply_markup"] = inline_markup
        message["edit_date"] = int(time.time())
        stored.message = message
        for name, value in raw.items():
            setattr(stored, name, value)
        self._remember(method, stored, markup)
        return message

    async def _edit_message_text(self, params: JSON) -> JSON:
        stored = self._stored_message(params, "edit")
        if "text" not in stored.message:
            raise _bad("there is no text in the message to edit")
        raw, parse_mode, text, entities = self._message_text(params)
        markup = self._checked_markup(params.get("reply_markup"))
        changes = {"text": text, "entities": entities or None}
        return self._edited("editMessageText", stored, changes, markup, raw_text=raw, parse_mode=parse_mode)

    async def _edit_message_caption(self, params: JSON) -> JSON:
        stored = self._stored_message(params, "edit")
        if "photo" not in stored.message:
            raise _bad("there is no caption in the message to edit")
        raw = params.get("caption") or None
        parse_mode = params.get("parse_mode")
        caption, entities = self._formatted(raw or "", parse_mode, params.get("caption_entities"))
        if len(caption) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        markup = self._checked_markup(params.get("reply_markup"))
        changes = {"caption": caption or None, "caption_entities": entities or None}
        return self._edited(
            "editMessageCaption", stored, changes, markup, raw_caption=raw, parse_mode=parse_mode
        )

    async def _edit_message_reply_markup(self, params: JSON) -> JSON:
        stored = self._stored_message(params, "edit")
        markup = self._checked_markup(params.get("reply_markup"))
        return self._edited("editMessageReplyMarkup", stored, {}, markup)

    async def _edit_message_media(self, params: JSON) -> JSON:
        """editMessageMedia, as https://core.telegram.org/bots/api#editmessagemedia describes it.

        The message must exist in that chat and be the bot's own (``_stored_message``); ``media`` is a
        JSON-serialized InputMedia whose ``media`` is the file_id of a file Telegram has, or
        ``attach://<name>`` naming a part of the same multipart/form-data request
        (https://core.telegram.org/bots/api#sending-files); a URL cannot be fetched here. The new caption
        replaces the old one (none given: none kept, as for InputMedia), and the keyboard likewise.
        Identical media, caption and keyboard answer 400 "message is not modified", as the other edits.
        Error texts are Telegram's as bots have met them: "can't parse InputMedia: Media is not specified"
        (telegraf/telegraf#834, irazasyed/telegram-bot-sdk#738), "can't parse InputMedia: media not found"
        for an attach:// name with no such part (irazasyed/telegram-bot-sdk#944), "wrong file
        identifier/HTTP URL specified" for an unknown file_id (yagop/node-telegram-bot-api#876).
        Only photos are served (the other InputMedia types answer 400 with a description).
        """
        stored = self._stored_message(params, "edit")
        media = params.get("media")
        if media is None:
            raise _bad("there is no media in the request")
        if not isinstance(media, dict):
            raise _bad("can't parse input media JSON object")
        kind = media.get("type")
        if kind != "photo":
            raise _bad(f"the emulator serves InputMediaPhoto only, got type {kind!r}")
        reference = media.get("media")
        if not isinstance(reference, str) or not reference:
            raise _bad("can't parse InputMedia: Media is not specified")
        if reference.startswith("attach://"):
            upload = params.get(reference.removeprefix("attach://"))
            if not isinstance(upload, UploadedFile):
                raise _bad("can't parse InputMedia: media not found")
            data = self._photo_bytes(upload)
            known = None
        else:
            known = self._files.get(reference)
            if known is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            data = self._photo_bytes(reference)
        size = _image_size(data)
        if size is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        raw_caption = media.get("caption") or None
        parse_mode = media.get("parse_mode")
        caption, entities = self._formatted(raw_caption or "", parse_mode, media.get("caption_entities"))
        if len(caption) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        markup = self._checked_markup(params.get("reply_markup"))
        old_photo = stored.message.get("photo") or [{}]
        if known is not None and old_photo[-1].get("file_id") == known.file_id:
            photo = old_photo  # the same file again: unchanged, as far as the media goes
        else:
            file = known or self._store_file(data, "png" if data.startswith(b"\x89PNG") else "jpg")
            photo = [
                {
                    "file_id": file.file_id,
                    "file_unique_id": file.file_unique_id,
                    "width": size[0],
                    "height": size[1],
                    "file_size": len(data),
                }
            ]
        # A text message may be given media too (the method's description); its text goes.
        changes = {"photo": photo, "caption": caption or None, "caption_entities": entities or None}
        if "text" in stored.message:
            changes.update(text=None, entities=None)
        stored.photo = data  # what the message shows after the edit (unchanged if the edit is refused)
        return self._edited(
            "editMessageMedia", stored, changes, markup, raw_caption=raw_caption, raw_text=None,
            parse_mode=parse_mode,
        )  # fmt: skip

    async def _delete_message(self, params: JSON) -> bool:
        stored = self._stored_message(params, "delete")
        del self._messages[stored.message["chat"]["id"]][stored.message["message_id"]]
        return True

    async def _answer_callback_query(self, params: JSON) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._callback_queries or query_id in self.callback_answers:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        if len(params.get("text") or "") > 200:
            raise _bad("MESSAGE_TOO_LONG")
        self.callback_answers[query_id] = params
        return True

    def _command_menu_key(self, params: JSON) -> tuple[str, str]:
        scope = params.get("scope")
        key = json.dumps(scope, sort_keys=True) if isinstance(scope, dict) else _DEFAULT_SCOPE
        return key, str(params.get("language_code") or "")

    async def _set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad('parameter "commands" is required')
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        menu: list[JSON] = []
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            description = command.get("description") if isinstance(command, dict) else None
            if not isinstance(name, str) or not _COMMAND_NAME.fullmatch(name):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            menu.append({"command": name, "description": description})
        self._command_menus[self._command_menu_key(params)] = menu
        return True

    async def _get_my_commands(self, params: JSON) -> list[JSON]:
        return self._command_menus.get(self._command_menu_key(params), [])

    async def _delete_my_commands(self, params: JSON) -> bool:
        self._command_menus.pop(self._command_menu_key(params), None)
        return True

    async def _set_webhook(self, params: JSON) -> bool:
        url = str(params.get("url") or "")
        if url and not url.startswith(("https://", "http://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise _bad("secret token contains unallowed characters")
        max_connections = params.get("max_connections", 40)
        if not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = tuple(allowed)
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self._webhook = (
            WebhookSetting(
                url=url,
                secret_token=secret,
                allowed_updates=tuple(allowed)
                if isinstance(allowed, list)
                else self._webhook.allowed_updates,
                max_connections=max_connections,
                ip_address=params.get("ip_address"),
            )
            if url
            else WebhookSetting()
        )
        return True

    async def _delete_webhook(self, params: JSON) -> bool:
        self._webhook = WebhookSetting()
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(self, params: JSON) -> JSON:
        hook = self._webhook
        info: JSON = {
            "url": hook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if hook.url:
            info["max_connections"] = hook.max_connections
            if hook.allowed_updates is not None:
                info["allowed_updates"] = list(hook.allowed_updates)
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
        return info

    async def _send_chat_action(self, params: JSON) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    async def _get_chat(self, params: JSON) -> JSON:
        chat_id = params.get("chat_id")
        if isinstance(chat_id, str):
            chat = self._chats_by_username.get(chat_id.removeprefix("@").lower())
        else:
            chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise _bad("chat not found")
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _member(self, chat_id: int | str, user_id: int) -> JSON:
        user = self.bot_user if user_id == self.bot_user["id"] else self._users.get(user_id)
        if user is None:
            user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        owner_id, admin_ids = self._admins.get(chat_id, (None, ()))
        if user_id == owner_id:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if user_id in admin_ids:
            rights = (
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
            )
            return {
                "status": "administrator",
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                **dict.fromkeys(rights, True),
            }
        is_member = (
            user_id == self.bot_user["id"]
            or user_id in self._members.get(chat_id, ())
            or (self._chats[chat_id]["type"] == "private" and user_id == chat_id)
        )
        return {"status": "member" if is_member else "left", "user": user}

    async def _get_chat_member(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise _bad("invalid user_id specified")
        return self._member(chat["id"], user_id)

    async def _get_chat_administrators(self, params: JSON) -> list[JSON]:
        chat = self._target_chat(params)
        if chat["type"] == "private":
            raise _bad("there are no administrators in the private chat")
        owner_id, admin_ids = self._admins.get(chat["id"], (None, ()))
        everyone = ([owner_id] if owner_id is not None else []) + list(admin_ids)
        return [self._member(chat["id"], user_id) for user_id in everyone]

    async def _get_file(self, params: JSON) -> JSON:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise _bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }


@pytest_asyncio.fixture(name="telegram_emulator")
async def telegram_emulator_fixture() -> AsyncIterator[TelegramEmulator]:
    """A running emulator for TEST_TOKEN; fails the test if a request crashed it."""
    async with TelegramEmulator() as emulator:
        yield emulator
    if emulator.internal_errors:
        pytest.fail("the Telegram emulator crashed on a request:\n" + "\n".join(emulator.internal_errors))
