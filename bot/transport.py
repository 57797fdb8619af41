"""Telegram as the outbox's transport: PTB's errors translated into what delivery acts on."""

from __future__ import annotations

from typing import Any

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter
from telegram.ext import ExtBot

from alerts import delivery
from bot.limiter import NO_RETRY, retry_after_seconds

GONE = ("chat not found", "user is deactivated", "bot was kicked", "have no rights to send")


def transport(bot: Bot) -> delivery.Transport:
    # A 429 comes straight back from the rate limiter: the outbox postpones the row itself, and waiting
    # inside the limiter too would retry it twice over and hold a delivery worker for the wait.
    once: dict[str, Any] = (
        {"rate_limit_args": NO_RETRY} if isinstance(bot, ExtBot) and bot.rate_limiter is not None else {}
    )

    async def send(chat_id: int, text: str) -> None:
        try:
            await bot.send_message(
                chat_id,
                text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                **once,
            )
        except RetryAfter as exc:
            raise delivery.RetryAfter(retry_after_seconds(exc)) from exc
        except Forbidden as exc:
            raise delivery.Blocked(str(exc)) from exc
        except ChatMigrated as exc:  # a group became a supergroup: same members, a new id to write to
            raise delivery.Moved(exc.new_chat_id) from exc
        except BadRequest as exc:
            if any(reason in str(exc).lower() for reason in GONE):
                raise delivery.Blocked(str(exc)) from exc
            raise delivery.PermanentFailure(str(exc)) from exc
        except NetworkError as exc:  # timeouts, connection errors and 5xx answers
            raise delivery.TemporaryFailure(str(exc)) from exc

    return send
