"""The PTB handler adapter: the seam between the command core and python-telegram-bot.

Every command and button of every family is registered here the same way (``add_family``); a handler
turns the update into a ``Request``, asks the core, and turns the ``Answer`` into Bot API calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InputMediaPhoto,
    InputTextMessageContent,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, InlineQueryHandler, MessageHandler, filters

from alerts.messages import fit_text
from bot import commands, core, inline
from bot.answers import (
    GROUP_ADMINS_ONLY,
    GROUP_CHATS,
    MAX_CAPTION,
    Answer,
    Button,
    ButtonFlow,
    Command,
    Family,
    Request,
    after_command,
)
from bot.context import App, Context
from bot.format import esc, plain
from bot.limiter import retry_after_seconds

log = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
SORRY = "Sorry, something went wrong on my side. It has been logged; please try again in a minute."


def request_for(update: Update, context: Context, name: str, args: Iterable[str]) -> Request:
    chat = update.effective_chat
    user = update.effective_user
    message = update.effective_message
    return Request(
        command=name,
        args=tuple(args),
        services=context.bot_data.services,
        chat_id=chat.id if chat else 0,
        user_id=user.id if user else 0,
        chat_type=chat.type if chat else "private",
        text=after_command(message.text or "")
        if message is not None and update.callback_query is None
        else "",
    )


async def is_group_admin(update: Update, context: Context) -> bool:
    """Whether the sender administers the group the update comes from (asked of Telegram each time, so a
    demoted administrator loses the right at once). Any doubt answers no."""
    chat, user, message = update.effective_chat, update.effective_user, update.message
    if chat is None:
        return False
    if message is not None and message.sender_chat is not None and message.sender_chat.id == chat.id:
        return True  # an anonymous administrator writing as the group itself, which only administrators can
    if user is None:
        return False
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.warning(
            "chat %s: could not check the sender's rights (%s)", chat.id, exc, extra={"chat_id": chat.id}
        )
        return False
    return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


async def checked_request(
    update: Update, context: Context, name: str, args: Iterable[str], group_admin_only: bool
) -> Request:
    """``request_for``, with ``is_group_admin`` filled in where the answer depends on it (groups only)."""
    request = request_for(update, context, name, args)
    if group_admin_only and request.chat_type in GROUP_CHATS:
        request = dataclasses.replace(request, is_group_admin=await is_group_admin(update, context))
    return request


def keyboard(answer: Answer) -> dict[str, Any]:
    """The answer's buttons as the ``reply_markup`` field of a Bot API call, for its ``api_kwargs`` (no
    buttons: no field). A cached answer goes to every chat that asks: its keyboard is built and encoded
    once, not for each send. The value is the JSON text the Bot API takes for the field (PTB encodes an
    object into exactly that before sending it, on every call). The dict is shared: nothing may change it."""
    return _reply_markup(answer.keyboard) if answer.keyboard else {}


@functools.lru_cache(maxsize=256)
def _reply_markup(rows: tuple[tuple[Button, ...], ...]) -> dict[str, Any]:
    return {"reply_markup": json.dumps(inline_keyboard(rows).to_dict())}


def inline_keyboard(rows: Iterable[Iterable[Button]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[_button(b) for b in row] for row in rows])


def _button(button: Button) -> InlineKeyboardButton:
    if button.share:  # opens the chat picker with "@bot <query>" typed in the chosen chat
        return InlineKeyboardButton(button.label, switch_inline_query=button.data)
    return InlineKeyboardButton(button.label, callback_data=button.data)


# Telegram keeps every photo it received: the same chart is sent again by its file_id, not re-uploaded.
# Bounded: charts change with every refresh, so old ids are dropped rather than kept forever.
PHOTO_IDS_KEPT = 64


def _photo(context: Context, answer: Answer) -> str | bytes:
    """The answer's chart as Telegram should get it: the file_id of the same PNG sent before, else the PNG."""
    assert answer.photo is not None
    return context.bot_data.photo_ids.get(hash(answer.photo), answer.photo)


def _keep_photo_id(context: Context, answer: Answer, sent: object) -> None:
    """Remember the file_id Telegram gave the answer's chart, so the next send of it is not an upload."""
    known = context.bot_data.photo_ids
    photo = getattr(sent, "photo", None)  # an edit may answer True instead of the message
    key = hash(answer.photo)
    if key not in known and photo:
        if len(known) >= PHOTO_IDS_KEPT:
            known.clear()
        known[key] = photo[-1].file_id


async def send(context: Context, chat_id: int, answer: Answer) -> None:
    bot = context.bot
    if answer.photo is not None:
        fits = len(answer.text) <= MAX_CAPTION
        sent = await bot.send_photo(
            chat_id,
            photo=_photo(context, answer),
            filename=answer.photo_name,
            caption=answer.text if fits else None,
            parse_mode=ParseMode.HTML,
            api_kwargs=keyboard(answer) if fits else None,
        )
        _keep_photo_id(context, answer, sent)
        if fits:
            return
    await post_text(bot, chat_id, answer.text, keyboard(answer))


async def post_text(bot: Bot, chat_id: int, text: str, markup: dict[str, Any]) -> None:
    """sendMessage, without building a ``Message`` from Telegram's reply, which nothing here reads.

    ``Bot.send_message`` turns the reply (the whole message back: its text, entities and every button)
    into PTB objects; for an answer with ten period buttons that is 0.12 ms of the 0.5 ms of CPU a cached
    answer costs (bench/FINDINGS.md). ``Bot._post`` is what ``send_message`` itself calls: the same
    defaults, request, rate limiter and errors (BadRequest, Forbidden, RetryAfter), without the parse.
    """
    await bot._post(
        "sendMessage",
        {"chat_id": chat_id, "text": text, "parse_mode": ParseMode.HTML, "link_preview_options": NO_PREVIEW},
        api_kwargs=markup or None,
    )


Callback = Callable[[Update, Context], Coroutine[Any, Any, None]]


def command_callback(command: Command) -> Callback:
    async def callback(update: Update, context: Context) -> None:
        if update.effective_chat is None:
            return
        chat_id = update.effective_chat.id
        # The command's name only: what users write after it is theirs and stays out of the logs.
        log.info("chat %s: /%s", chat_id, command.name, extra={"chat_id": chat_id, "command": command.name})
        request = await checked_request(
            update, context, command.name, context.args or (), command.group_admin_only
        )
        await send(context, chat_id, await core.answer(request))

    callback.__name__ = f"on_{command.name}"
    return callback


def button_callback(flow: ButtonFlow) -> Callback:
    """A press on a button of ``flow`` redraws its message with ``flow.build(request, data)``.

    A photo answer replaces the picture, caption and keyboard of the message in place (editMessageMedia);
    a text answer under a photo (a refusal, say) replaces its caption. With ``group_admin_only``, a group
    member who is no administrator gets a refusal only they see, and the message stays as it is.
    """

    async def on_press(update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None or query.message is None:
            return
        chat_id = query.message.chat.id
        log.info(
            "chat %s: button %s", chat_id, flow.prefix, extra={"chat_id": chat_id, "command": flow.prefix}
        )
        data = (query.data or "").partition(":")[2]
        request = await checked_request(update, context, flow.prefix, (), flow.group_admin_only)
        if flow.group_admin_only and request.chat_type in GROUP_CHATS and not request.is_group_admin:
            await query.answer(GROUP_ADMINS_ONLY, show_alert=True)
            return
        answer = await core.run(request, lambda r: flow.build(r, data))
        # A period pressed under a market answer redraws it with the share button for the new period.
        answer = core.shareable(commands.find(flow.prefix), (data,), answer)
        await query.answer()
        under_photo = bool(getattr(query.message, "photo", None))
        in_place = under_photo and len(answer.text) <= MAX_CAPTION
        try:
            if in_place and answer.photo is not None:
                edited = await query.edit_message_media(
                    InputMediaPhoto(
                        _photo(context, answer),
                        caption=answer.text,
                        parse_mode=ParseMode.HTML,
                        filename=answer.photo_name,
                    ),
                    api_kwargs=keyboard(answer),
                )
                _keep_photo_id(context, answer, edited)
            elif in_place:
                await query.edit_message_caption(
                    answer.text, parse_mode=ParseMode.HTML, api_kwargs=keyboard(answer)
                )
            elif answer.photo is not None or under_photo:
                await send(context, chat_id, answer)  # no room for it in the message pressed
            else:
                await query.edit_message_text(
                    answer.text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=NO_PREVIEW,
                    api_kwargs=keyboard(answer),
                )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():  # pressing the current choice again is harmless
                raise

    on_press.__name__ = f"on_{flow.prefix}_button"
    return on_press


def add_family(application: App, family: Family) -> None:
    """Every command and every button flow of ``family``, each registered the same way.

    A command and a button press never match the same update, so their order among each other is free;
    button prefixes end at a colon, so ``alert:`` and ``alerts:`` never meet either.
    """
    for command in family.COMMANDS:
        application.add_handler(CommandHandler(command.name, command_callback(command)))
    for flow in family.BUTTONS:
        application.add_handler(CallbackQueryHandler(button_callback(flow), pattern=rf"^{flow.prefix}:"))


# Inline answers change with the market snapshot (a refresh every few minutes during the session):
# Telegram may serve the same answer to anyone typing the same query for this long. The guide never
# changes. Neither is personal (``is_personal`` stays False): they are the same for every user.
INLINE_CACHE_SECONDS = 60
GUIDE_CACHE_SECONDS = 300


async def on_inline_query(update: Update, context: Context) -> None:
    """``@bot standing 10y`` typed in any chat: one result, the command's own answer (bot/inline.py)."""
    query = update.inline_query
    if query is None:
        return
    word = (query.query.split() or [""])[0].removeprefix("/")[:32].lower()
    # A command's name only, as for messages: anything else the user typed stays out of the logs.
    named = word if commands.find(word) is not None else "(no command)"
    log.info("inline query: %s", named, extra={"command": named})
    services = context.bot_data.services
    answer = await inline.inline_answer(services, query.from_user.id, query.query)
    cache = GUIDE_CACHE_SECONDS if answer.refusal else INLINE_CACHE_SECONDS
    try:
        await query.answer([inline_result(context, answer, query.query)], cache_time=cache)
    except BadRequest as exc:
        # Telegram waits about 10 s for an answer; by then the user has typed on and sees the next one.
        if "query is too old" not in str(exc).lower() and "query_id_invalid" not in str(exc).lower():
            raise
        log.warning("inline query answered too late for Telegram (%s): dropped", exc)


def inline_result(
    context: Context, answer: Answer, query: str
) -> InlineQueryResultArticle | InlineQueryResultCachedPhoto:
    """A chart as the photo Telegram already has (by the file_id a send of it returned: an inline answer
    cannot upload), else the answer's text as an article. Only share buttons come along: a message sent
    inline has no chat the bot could redraw it in."""
    result_id = hashlib.sha256(" ".join(query.lower().split()).encode()).hexdigest()[:32]
    shares = tuple(row for row in answer.keyboard if all(b.share for b in row))
    markup = inline_keyboard(shares) if shares else None
    title, description = _headline(answer.text)
    text = answer.text
    if answer.photo is not None:
        file_id = context.bot_data.photo_ids.get(hash(answer.photo))
        if file_id is not None and len(answer.text) <= MAX_CAPTION:
            return InlineQueryResultCachedPhoto(
                result_id,
                file_id,
                title=title,
                description=description,
                caption=answer.text,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
            )
        asked = " ".join(query.split()).removeprefix("/")
        text = fit_text(
            f"{answer.text}\n<i>The picture: send <code>/{esc(asked)}</code> to "
            f"@{esc(context.bot.username or 'me')}.</i>"
        )
    return InlineQueryResultArticle(
        result_id,
        title,
        InputTextMessageContent(text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW),
        description=description,
        reply_markup=markup,
    )


def _headline(text: str) -> tuple[str, str]:
    """An article's title and description: the answer's first two lines, as plain text."""
    lines = [line.strip() for line in plain(text).splitlines() if line.strip()] or ["capgap"]
    return lines[0][:100], (lines[1][:200] if len(lines) > 1 else "")


def add_inline(application: App) -> None:
    # Inline queries match no command or button handler, so the position among them is free.
    application.add_handler(InlineQueryHandler(on_inline_query))


async def on_unknown(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or update.effective_chat is None:
        return
    name, _, addressee = (message.text or "").split()[0].lstrip("/").partition("@")
    if addressee and addressee.lower() != (context.bot.username or "").lower():
        return  # a command for another bot in the same group
    request = request_for(update, context, name[:32], ())
    await send(context, update.effective_chat.id, await core.answer(request))


async def on_text(update: Update, context: Context) -> None:
    if update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, "Send /help to see what I can answer.")


async def on_error(update: object, context: Context) -> None:
    chat_id = update.effective_chat.id if isinstance(update, Update) and update.effective_chat else None
    if isinstance(context.error, RetryAfter):  # a wait the rate limiter would not take (bot/limiter.py)
        wait = retry_after_seconds(context.error)
        log.warning("chat %s: no reply sent, Telegram asks to wait %.0f s", chat_id, wait)
        return  # an apology would be refused the same way
    log.error("unhandled error (chat %s)", chat_id, exc_info=context.error)
    if chat_id is not None:
        try:
            await context.bot.send_message(chat_id, SORRY)
        except Exception:  # the error may be Telegram itself being unreachable
            log.warning("could not tell chat %s about the error", chat_id)


async def on_chat_migrated(update: Update, context: Context) -> None:
    """A group became a supergroup, which has a new id: its settings, rules and queued alerts move there.

    Telegram says so in both chats (``migrate_to_chat_id`` in the old group, ``migrate_from_chat_id`` in
    the supergroup); whichever comes first moves the chat, the other finds nothing left to move.
    """
    message = update.effective_message
    if message is None:
        return
    if message.migrate_to_chat_id:
        old_chat_id, new_chat_id = message.chat.id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id:
        old_chat_id, new_chat_id = message.migrate_from_chat_id, message.chat.id
    else:
        return
    moved = await asyncio.to_thread(context.bot_data.services.alerts.move_chat, old_chat_id, new_chat_id)
    log.info("chat %s became %s: moved %s", old_chat_id, new_chat_id, moved, extra={"chat_id": new_chat_id})


def add_chat_moves(application: App) -> None:
    # Service messages only: no command or text handler matches them, so the position among them is free.
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, on_chat_migrated))


def add_fallbacks(application: App) -> None:
    """Last in order: anything no family claimed gets a pointer to /help, never silence."""
    application.add_handler(MessageHandler(filters.COMMAND, on_unknown))
    application.add_handler(MessageHandler(filters.TEXT & filters.ChatType.PRIVATE, on_text))
    application.add_error_handler(on_error)


def menu(commands: Iterable[Command]) -> list[BotCommand]:
    return [BotCommand(c.name, c.summary[:256]) for c in commands if c.menu and not c.admin_only]
