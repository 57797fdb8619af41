"""/forget: delete everything capgap keeps about a chat, after a confirmation button.

The confirmation's callback data names who asked (``forget:yes:<user id>``) and is checked, not trusted:
in a private chat only that user can press it anyway; in a group the button flow admits administrators
only, and any of them may confirm. A forged or stale button deletes nothing.
"""

from __future__ import annotations

import re

from bot.answers import GROUP_CHATS, Answer, Button, ButtonFlow, Command, Request

_CONFIRM = re.compile(r"^yes:(\d{1,20})$")
CANCELLED = "Nothing was deleted."


def forget(request: Request) -> Answer:
    store = request.services.alerts
    where = "this group" if request.chat_type in GROUP_CHATS else "this chat"
    alerts = store.rules.count_groups(request.chat_id)
    return Answer(
        f"🗑 <b>Forget {where}?</b>\n"
        f"This deletes everything capgap keeps about {where}: {_alerts(alerts)}, its time zone and "
        "digest setting, and the messages it has queued or sent here. It cannot be undone.",
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
    store = request.services.alerts
    # Counted as /alerts shows them (a "cross" is one alert, though stored as two rules).
    alerts = store.rules.count_groups(request.chat_id)
    deleted = store.forget_chat(request.chat_id)
    erased = [_alerts(alerts)] if alerts else []
    if deleted["chats"]:
        erased.append("its time zone and digest setting")
    messages = deleted["outbox"]
    if messages:
        erased.append(f"{messages} message{'s' if messages != 1 else ''} it had queued or sent here")
    if erased:
        what = "Deleted " + ", ".join(erased[:-1]) + (" and " if len(erased) > 1 else "") + erased[-1] + "."
    else:
        what = "There was nothing to delete."
    return Answer(
        f"Done: capgap no longer keeps anything about this {'group' if in_group else 'chat'}. "
        f"{what} /start to begin again."
    )


def _alerts(count: int) -> str:
    """Alerts as /alerts counts them: 'its 3 alerts', 'its 1 alert', 'no alerts'."""
    return f"its {count} alert{'s' if count != 1 else ''}" if count else "no alerts"


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


BUTTONS = (ButtonFlow("forget", confirm, group_admin_only=True),)
