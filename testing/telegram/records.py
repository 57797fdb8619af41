"""What the emulator hands tests (the calls the bot made, the messages it sent) and how it refuses a request."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

# The token tests and benchmarks give the bot (testing.world.make_config); deliberately not shaped like a
# real one (8-10 digits, a colon, 35 characters).
TEST_TOKEN: Final = "12345:capgap-test-token-not-a-real-one"
TEST_BOT_USERNAME: Final = "capgap_test_bot"

MAX_TEXT_LENGTH: Final = 4096
MAX_CAPTION_LENGTH: Final = 1024
MAX_CALLBACK_DATA_BYTES: Final = 64

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
