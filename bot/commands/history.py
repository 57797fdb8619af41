"""/history and /export: the alerts a chat was sent, and its rules as lines /alert takes back."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from alerts.messages import alert_summaries
from alerts.rules import RuleError, parse_rule
from alerts.store import DEFAULT_ZONE
from bot.answers import GROUP_CHATS, Answer, Command, Request
from bot.format import day, esc

if TYPE_CHECKING:
    from alerts.store import ChatAlert

HISTORY_SIZE = 20


def _whose(request: Request) -> str:
    return "this group" if request.chat_type in GROUP_CHATS else "you"


def history(request: Request) -> Answer:
    """The chat's last alerts sent, newest first, each at the time Telegram took it, in the chat's zone."""
    store = request.services.alerts
    chat = store.chats.get(request.chat_id)
    zone = chat.zone if chat else DEFAULT_ZONE
    # A message may carry several alerts, so as many messages as alerts wanted are always enough.
    sent = store.outbox.sent_alerts(request.chat_id, HISTORY_SIZE)
    entries = [(when, alert) for when, text in sent for alert in alert_summaries(text)][:HISTORY_SIZE]
    if not entries:
        return Answer(
            f"No alert has been sent to {_whose(request)} yet. /alerts lists the alerts set; "
            "<code>/alert rut above 3000</code> sets one."
        )
    lines = [
        f"<b>The last {len(entries)} alert{'s' if len(entries) != 1 else ''} sent</b>, newest first "
        f"(times in {esc(zone)}; /tz changes it)"
    ]
    lines += [f"{esc(local_time(when, zone))} · {alert}" for when, alert in entries]
    return Answer("\n".join(lines))


def local_time(moment: datetime, zone: str) -> str:
    """'18 Jan 2024 22:05 CET': a moment in the chat's zone, with the zone's abbreviation."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{day(local)} {local:%H:%M %Z}"


def export(request: Request) -> Answer:
    """The chat's alerts as ``/alert`` lines in one block: sent back (here or in another chat) they set the
    same alerts again."""
    groups = request.services.alerts.rules.groups(request.chat_id)
    if not groups:
        has = "this group has" if request.chat_type in GROUP_CHATS else "you have"
        return Answer(f"There is nothing to export: {has} no alerts. /alert sets one.")
    now = request.services.now()
    lines = "\n".join(f"/alert {exported_rule(group, now)}" for group in groups)
    count = f"{len(groups)} alert{'s' if len(groups) != 1 else ''}"
    return Answer(
        f"<b>{count}, one a line.</b> Send this block back to me, here or in another chat, to set them "
        "again (paused ones come back active; an expiry counts from the day they are set again, and "
        f"what is left of it is written here).\n<pre>{esc(lines)}</pre>"
    )


def exported_rule(group: ChatAlert, now: datetime) -> str:
    """The alert's rule as /alert takes it: its canonical text, with an expiry cut to the days left."""
    if not group.expires_at:
        return group.spec
    try:
        spec = parse_rule(group.spec)
    except RuleError:  # a rule the grammar no longer reads: as it was stored
        return group.spec
    left = datetime.fromisoformat(group.expires_at) - now
    days = max(1, math.ceil(left / timedelta(days=1)))
    return dataclasses.replace(spec, expires_after=timedelta(days=days)).canonical


COMMANDS = (
    Command("history", "The last 20 alerts sent here, with their times", "/history", ("/history",), history),
    Command(
        "export",
        "Your alerts as lines to paste back to /alert",
        "/export",
        ("/export",),
        export,
    ),
)
BUTTONS = ()
