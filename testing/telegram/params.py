"""Request parameters as the Bot API reads them: query string, form, multipart (files) or JSON body, with
PTB's JSON-encoded fields decoded and numbers and flags typed."""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from testing.telegram.records import JSON, UploadedFile, _bad

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
        "results",
        "button",
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
        "is_personal",
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


async def read_params(request: web.Request) -> JSON:
    """A request's parameters from its query and its form, multipart or JSON body, as PTB sends them."""
    params: JSON = {name: _coerce(name, value) for name, value in request.query.items()}
    if not request.body_exists:
        return params
    content_type = request.content_type
    if content_type == "application/x-www-form-urlencoded":
        body = (await request.read()).decode("utf-8", "surrogateescape")
        params.update((name, _coerce(name, value)) for name, value in parse_qsl(body, keep_blank_values=True))
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
