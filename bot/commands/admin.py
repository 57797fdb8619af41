"""/stats, for the operator (CAPGAP_ADMINS): how many chats and alerts, what was sent, how fresh the data is.

Admin-only commands are invisible to everyone else: not in the menu, not in /help, and answered exactly
like a command that does not exist (``bot.core.answer``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.answers import Answer, Command, Request
from bot.format import esc
from bot.health import check
from bot.provenance import held_line


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172_800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86_400} days ago"


def stats(request: Request) -> Answer:
    services = request.services
    now = services.now()
    start = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)
    usage = services.alerts.usage(start, start + timedelta(days=1))
    health = check(services, now)  # it is answering this command: it is live and ready
    market, outbox = health.body["market"], health.body["outbox"]
    behind = market["sessions_behind"]
    lines = [
        "<b>capgap stats</b>",
        f"Chats: {usage.active_chats:,} active of {usage.chats:,}",
        f"Alerts: {usage.rules:,} set ({usage.paused_rules:,} paused) in {usage.chats_with_rules:,} chats",
        f"Alerts sent today (UTC): {usage.alerts_sent:,}",
        f"Outbox: {outbox['pending']:,} pending"
        + (
            ""
            if outbox["oldest_pending_age_seconds"] is None
            else f", oldest {_age(outbox['oldest_pending_age_seconds'])}"
        ),
        f"Data: latest close {market['latest_close'] or 'none'}"
        + (" (up to date)" if behind == 0 else f" ({behind} session(s) behind)" if behind else "")
        + f"; last refresh {_age(market['last_refresh_age_seconds'])} from {esc(market['source'])}",
        "Source: "
        + (
            "ok"
            if market["last_error"] is None
            else f"last refresh failed: {esc(market['last_error_reason'])} ({esc(market['last_error'])})"
        ),
    ]
    held = market["held_values"]
    if held["unconfirmed"] or held["rejected"]:
        newest = services.market.snapshot.held[:3]
        lines.append(
            f"Held aside as implausible: {held['unconfirmed']:,} unconfirmed, {held['rejected']:,} rejected"
            + "".join(f"\n· {esc(held_line(value))}" for value in newest)
        )
    delivery_error = health.body["delivery"]["last_error"]
    if delivery_error:
        lines.append(
            f"Last delivery error: {esc(delivery_error)} ({health.body['delivery']['last_error_row_status']})"
        )
    lines.append(
        "Health: ok" if health.healthy else "Health: ⚠️ " + "; ".join(esc(p) for p in health.problems)
    )
    return Answer("\n".join(lines))


COMMANDS = (
    Command(
        "stats",
        "Chats, alerts, deliveries and data health (admins only)",
        "/stats",
        ("/stats",),
        stats,
        menu=False,
        admin_only=True,
    ),
)


BUTTONS = ()
