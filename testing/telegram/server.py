"""The emulator itself: an aiohttp server on 127.0.0.1 holding chats, users, messages, updates and bot
settings, and the Bot API methods capgap uses. Its surface for tests is described in ``testing.telegram``;
faults, flood limits, photos and the call log are mixed in from their own modules.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from testing.telegram.calls import CallLog
from testing.telegram.faults import FaultInjection
from testing.telegram.html import HtmlError, _utf16_len, parse_html
from testing.telegram.limits import FloodControl
from testing.telegram.media import PhotoStore, _image_size
from testing.telegram.params import _coerce, read_params
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
    ApiError,
    SentMessage,
    UploadedFile,
    WebhookSetting,
    _bad,
    _Registered,
)


@dataclass(slots=True)
class _StoredMessage:
    message: JSON
    latest: SentMessage | None  # None for messages users sent
    raw_text: str | None = None
    raw_caption: str | None = None
    parse_mode: str | None = None
    photo: bytes | None = None


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
# Inline mode: a query's text, the results one answer may carry and their ids
# (https://core.telegram.org/bots/api#inlinequery, #answerinlinequery), and how long a query can be
# answered (about 10 s: eternnoir/pyTelegramBotAPI#270).
MAX_INLINE_QUERY_CHARS: Final = 256
MAX_INLINE_RESULTS: Final = 50
MAX_INLINE_RESULT_ID_BYTES: Final = 64
INLINE_QUERY_TTL: Final = 10.0
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


class TelegramEmulator(FaultInjection, FloodControl, PhotoStore, CallLog):
    """One bot's view of the Telegram Bot API, served on 127.0.0.1; see ``testing.telegram``."""

    def __init__(self, token: str = TEST_TOKEN, *, bot_username: str = TEST_BOT_USERNAME) -> None:
        super().__init__()  # faults, flood limits, photos and the call log set up their own state
        self.token = token
        bot_id = token.split(":", 1)[0]
        self.bot_user: JSON = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "capgap test bot",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            # Inline mode is on (BotFather's /setinline): capgap answers "@bot standing 10y" in any chat.
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.strict_chats = False
        self.root = ""
        self.sent: list[SentMessage] = []
        self.callback_answers: dict[str, JSON] = {}
        self.inline_answers: dict[str, JSON] = {}  # inline query id -> answerInlineQuery params
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
                "answerInlineQuery": self._answer_inline_query,
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
        self._inline_ids = itertools.count(6_100_000_001)
        self._inline_queries: dict[str, float] = {}  # id -> when it was asked (time.monotonic)
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

        # Bot settings
        self._command_menus: dict[tuple[str, str], list[JSON]] = {}
        self._webhook = WebhookSetting()

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

    def inline_query(
        self, user_id: int, query: str, *, chat_type: str = "sender", first_name: str = "Ada"
    ) -> str:
        """Queue what a user typing ``@bot <query>`` in a chat sends (an ``inline_query`` update, with no
        chat in it: only its kind, "sender" for the user's own chat with the bot, or "private", "group",
        "supergroup", "channel"); returns the inline query id."""
        if not self.bot_user["supports_inline_queries"]:
            raise ValueError("inline mode is off for this bot: clients send it no inline queries")
        if len(query) > MAX_INLINE_QUERY_CHARS:
            raise ValueError(f"an inline query is at most {MAX_INLINE_QUERY_CHARS} characters")
        query_id = str(next(self._inline_ids))
        self._inline_queries[query_id] = time.monotonic()
        sender = self._users.get(user_id) or self._user(user_id, first_name, None)
        self.queue_update(
            {
                "inline_query": {
                    "id": query_id,
                    "from": sender,
                    "query": query,
                    "offset": "",
                    "chat_type": chat_type,
                }
            }
        )
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

    async def wait_until_polling(self, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - as wait_for
        """Wait until a getUpdates request is being held open for updates."""
        try:
            async with asyncio.timeout(timeout):
                while self._held_polls == 0:
                    await self._held_polls_signal.wait()
        except TimeoutError:
            raise AssertionError(f"no getUpdates request was held open within {timeout}s") from None

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        asked = request.match_info["method"]
        entry = self._methods.get(asked.lower())
        method = entry[0] if entry else asked
        params: JSON = {}
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(404, "Not Found")
            params = await read_params(request)
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

    async def _handle_unknown_path(self, request: web.Request) -> web.Response:
        return self._not_found()

    @staticmethod
    def _not_found() -> web.Response:
        body = ApiError(404, "Not Found").body()
        return web.Response(body=json.dumps(body), status=404, content_type="application/json")

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

    def _caption(self, source: JSON) -> tuple[str | None, str | None, str, list[JSON]]:
        """A photo's caption fields (of a request, or of one InputMedia): raw text, parse mode, the parsed
        text and its entities; Telegram refuses a parsed caption over MAX_CAPTION_LENGTH."""
        raw = source.get("caption") or None
        parse_mode = source.get("parse_mode")
        caption, entities = self._formatted(raw or "", parse_mode, source.get("caption_entities"))
        if len(caption) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        return raw, parse_mode, caption, entities

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
        raw_caption, parse_mode, caption, entities = self._caption(params)
        fields: JSON = {}
        if raw_caption is not None:
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
        raw, parse_mode, caption, entities = self._caption(params)
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
        raw_caption, parse_mode, caption, entities = self._caption(media)
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

    async def _answer_inline_query(self, params: JSON) -> bool:
        """answerInlineQuery (https://core.telegram.org/bots/api#answerinlinequery), refusing what Telegram
        refuses, with the error texts bots have met:

        - an unknown or already answered query, or one older than about 10 s: "query is too old and response
          timeout expired or query ID is invalid" (eternnoir/pyTelegramBotAPI#1615, an answer 20 s late;
          #270 reports the 10 s expiry; older servers said "QUERY_ID_INVALID", atipugin/telegram-bot-ruby#33);
        - more than 50 results ("No more than 50 results per query are allowed", the method's description):
          "RESULTS_TOO_MUCH" (eyaadh/megadlbot_oss#42);
        - a result without an id: "can't parse inline query result: Can't find field \"id\""
          (puregram/puregram#34); an id outside 1-64 bytes (InlineQueryResult*.id: "Unique identifier for
          this result, 1-64 Bytes"): "RESULT_ID_INVALID"; two results with one id: "RESULT_ID_DUPLICATE"
          (tucnak/telebot#128, python-telegram-bot#860);
        - an article without its title or message text: "Can't find field \"title\"" / "\"message_text\""
          (TelegramBots/Telegram.Bot#136); the text and a photo's caption are checked as sendMessage's and
          sendPhoto's are (HTML, 4096 and 1024 characters);
        - a cached photo whose file_id Telegram does not have: "wrong file identifier/HTTP URL specified",
          as for sendPhoto.

        Only article and cached-photo results are served; other types answer 400 with a description.
        """
        query_id = str(params.get("inline_query_id", ""))
        asked = self._inline_queries.get(query_id)
        if asked is None or query_id in self.inline_answers or time.monotonic() - asked > INLINE_QUERY_TTL:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        results = params.get("results")
        if not isinstance(results, list):
            raise _bad('parameter "results" is required')
        if len(results) > MAX_INLINE_RESULTS:
            raise _bad("RESULTS_TOO_MUCH")
        seen: set[str] = set()
        for result in results:
            self._check_inline_result(result, seen)
        self.inline_answers[query_id] = params
        return True

    def _check_inline_result(self, result: Any, seen: set[str]) -> None:
        if not isinstance(result, dict):
            raise _bad("can't parse inline query result JSON object")
        if "id" not in result:
            raise _bad("can't parse inline query result: Can't find field \"id\"")
        result_id = str(result["id"])
        if not 1 <= len(result_id.encode("utf-8")) <= MAX_INLINE_RESULT_ID_BYTES:
            raise _bad("RESULT_ID_INVALID")
        if result_id in seen:
            raise _bad("RESULT_ID_DUPLICATE")
        seen.add(result_id)
        self._checked_markup(result.get("reply_markup"))
        kind = result.get("type")
        if kind == "article":
            if not isinstance(result.get("title"), str) or not result["title"]:
                raise _bad("can't parse inline query result: Can't find field \"title\"")
            content = result.get("input_message_content")
            if not isinstance(content, dict) or "message_text" not in content:
                raise _bad("can't parse inline query result: Can't find field \"message_text\"")
            self._message_text({**content, "text": content["message_text"]})
        elif kind == "photo" and "photo_file_id" in result:
            if str(result["photo_file_id"]) not in self._files:
                raise _bad("wrong file identifier/HTTP URL specified")
            self._caption(result)
        else:
            raise _bad(f"the emulator serves article and cached photo results only, got type {kind!r}")

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


@pytest_asyncio.fixture(name="telegram_emulator")
async def telegram_emulator_fixture() -> AsyncIterator[TelegramEmulator]:
    """A running emulator for TEST_TOKEN; fails the test if a request crashed it."""
    async with TelegramEmulator() as emulator:
        yield emulator
    if emulator.internal_errors:
        pytest.fail("the Telegram emulator crashed on a request:\n" + "\n".join(emulator.internal_errors))
