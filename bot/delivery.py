"""Telegram as the outbox's transport: PTB's errors translated into what delivery acts on."""

from __future__ import annotations

from datetime import timedelta

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from alerts import delivery

GONE = ("chat not found", "user is deactivated", "bot was kicked", "have no rights to send")


def transport(bot: Bot) -> delivery.Transport:
    async def send(chat_id: int, text: str) -> None:
        try:
            await bot.send_message(
                chat_id,
                text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except RetryAfter as exc:
            wait = exc.retry_after
            raise delivery.RetryAfter(
                wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            ) from exc
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
