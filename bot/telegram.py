"""The seam between the command core and python-telegram-bot: handlers, replies, the command menu."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import core
from bot.core import Answer, Command, Request

log = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
SORRY = "Sorry, something went wrong on my side. It has been logged; please try again in a minute."


def services_of(context: ContextTypes.DEFAULT_TYPE) -> Any:
    return context.application.bot_data["services"]


def request_for(
    update: Update, context: ContextTypes.DEFAULT_TYPE, name: str, args: Iterable[str]
) -> Request:
    chat = update.effective_chat
    user = update.effective_user
    return Request(
        command=name,
        args=tuple(args),
        services=services_of(context),
        chat_id=chat.id if chat else 0,
        user_id=user.id if user else 0,
        chat_type=chat.type if chat else "private",
    )


def markup(answer: Answer) -> InlineKeyboardMarkup | None:
    if not answer.keyboard:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in answer.keyboard]
    )


async def send(context: ContextTypes.DEFAULT_TYPE, chat_id: int, answer: Answer) -> None:
    bot = context.bot
    if answer.photo is not None:
        fits = len(answer.text) <= core.MAX_CAPTION
        await bot.send_photo(
            chat_id,
            photo=answer.photo,
            filename=answer.photo_name,
            caption=answer.text if fits else None,
            parse_mode=ParseMode.HTML,
            reply_markup=markup(answer) if fits else None,
        )
        if fits:
            return
    await bot.send_message(
        chat_id,
        answer.text,
        parse_mode=ParseMode.HTML,
        reply_markup=markup(answer),
        link_preview_options=NO_PREVIEW,
    )


def command_callback(command: Command) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Any]:
    async def callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_chat is None:
            return
        request = request_for(update, context, command.name, context.args or ())
        await send(context, update.effective_chat.id, await core.answer(request))

    callback.__name__ = f"on_{command.name}"
    return callback


def add_commands(application: Application, commands: Iterable[Command]) -> None:  # type: ignore[type-arg]
    for command in commands:
        application.add_handler(CommandHandler(command.name, command_callback(command)))


def add_button_flow(
    application: Application,  # type: ignore[type-arg]
    prefix: str,
    build: Callable[[Request, str], Answer],
) -> None:
    """Buttons with callback data ``prefix:<data>`` redraw their message with ``build(request, data)``.

    Callback data comes from the client and is never trusted: ``build`` validates it like typed input.
    A photo answer is sent as a new message (a caption cannot become a picture).
    """

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.message is None:
            return
        data = (query.data or "").partition(":")[2]
        request = request_for(update, context, prefix, ())
        answer = await core.run(request, lambda r: build(r, data))
        await query.answer()
        if answer.photo is not None:
            await send(context, query.message.chat.id, answer)
            return
        try:
            await query.edit_message_text(
                answer.text,
                parse_mode=ParseMode.HTML,
                reply_markup=markup(answer),
                link_preview_options=NO_PREVIEW,
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():  # pressing the current choice again is harmless
                raise

    application.add_handler(CallbackQueryHandler(on_press, pattern=rf"^{prefix}:"))


async def on_unknown(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or update.effective_chat is None:
        return
    name = (message.text or "").split()[0].lstrip("/").split("@")[0][:32]
    request = request_for(update, context, name, ())
    await send(context, update.effective_chat.id, await core.answer(request))


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, "Send /help to see what I can answer.")


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat_id = update.effective_chat.id if isinstance(update, Update) and update.effective_chat else None
    log.error("unhandled error (chat %s)", chat_id, exc_info=context.error)
    if chat_id is not None:
        try:
            await context.bot.send_message(chat_id, SORRY)
        except Exception:  # the error may be Telegram itself being unreachable
            log.warning("could not tell chat %s about the error", chat_id)


def add_fallbacks(application: Application) -> None:  # type: ignore[type-arg]
    """Last in order: anything no family claimed gets a pointer to /help, never silence."""
    application.add_handler(MessageHandler(filters.COMMAND, on_unknown))
    application.add_handler(MessageHandler(filters.TEXT & filters.ChatType.PRIVATE, on_text))
    application.add_error_handler(on_error)


def menu(commands: Iterable[Command]) -> list[BotCommand]:
    return [BotCommand(c.name, c.summary[:256]) for c in commands if c.menu and not c.admin_only]
