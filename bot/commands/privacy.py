"""/forget: delete everything capgap keeps about a chat, after a confirmation button.

The confirmation's callback data names who asked (``forget:yes:<user id>``) and is checked, not trusted:
in a private chat only that user can press it anyway; in a group the button flow admits administrators
only, and any of them may confirm. A forged or stale button deletes nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.core import GROUP_CHATS, Answer, Button, Command, Request

if TYPE_CHECKING:
    from telegram.ext import Application

_CONFIRM = re.compile(r"^yes:(\d{1,20})$")
CANCELLED = "Nothing was deleted."


def forget(request: Request) -> Answer:
    store = request.services.alerts
    where = "this group" if request.chat_type in GROUP_CHATS else "this chat"
    alerts = store.count_groups(request.chat_id)
    return Answer(
        f"🗑 <b>Forget {where}?</b>\n"
        f"This deletes everything capgap keeps about {where}: its {alerts} alert(s), its time zone and digest "
        "setting, and its queued and sent alert messages. It cannot be undone.",
        keyboard=(
            (
                Button("Yes, delete everything", f"forget:yes:{request.user_id}"),
                Button("Cancel", "forget:no"),
            ),
        ),
    )


def confirm(request: Request, data: str) -> Answer:
    if data == "no":
        return Answer(CANCELLED)
    match = _CONFIRM.match(data)
    if match is None:
        return Answer(f"That button is no longer valid. {CANCELLED} Send /forget again.")
    in_group = request.chat_type in GROUP_CHATS
    if int(match.group(1)) != request.user_id and not (in_group and request.is_group_admin):
        return Answer(f"Only the person who sent /forget can confirm it. {CANCELLED}")
    deleted = request.services.alerts.forget_chat(request.chat_id)
    return Answer(
        f"Done: capgap no longer keeps anything about this {'group' if in_group else 'chat'} "
        f"({deleted['rules']} alert rule row(s), {deleted['outbox']} message(s)). /start to begin again."
    )


COMMANDS = (
    Command(
        "forget",
        "Delete everything capgap keeps about this chat",
        "/forget",
        ("/forget",),
        forget,
        group_admin_only=True,
    ),
)


def register(application: Application) -> None:  # type: ignore[type-arg]
    from bot.telegram import add_button_flow, add_commands

    add_commands(application, COMMANDS)
    add_button_flow(application, "forget", confirm, group_admin_only=True)
