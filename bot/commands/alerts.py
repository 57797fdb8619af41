"""/alert, /alerts, /delete, /pause, /resume, /digest, /tz: rules a chat sets and how it hears of them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.core import Answer, Button, Command, Request, UsageError
from bot.format import day, esc

if TYPE_CHECKING:
    from telegram.ext import Application

    from alerts.store import AlertStore

EXAMPLES = (
    "<code>/alert rut above 3000</code>, <code>/alert spx below 4500 once</code>, <code>/alert rut cross 2000 close</code>, "
    "<code>/alert rut move 2%</code>, <code>/alert rut high</code>, <code>/alert rut drawdown 10%</code>, "
    "<code>/alert ratio below 0.40</code>, <code>/alert lead 5% 3m</code>, <code>/alert gap shift 3</code>"
)
GUIDE_TARGETS = (
    ("Russell 2000", "rut"),
    ("S&P 500", "spx"),
    ("RUT/SPX ratio", "ratio"),
    ("Valuation gap", "gap"),
)
GUIDE_KINDS = {
    "rut": ("above", "below", "cross", "move", "high", "drawdown"),
    "spx": ("above", "below", "cross", "move", "high", "drawdown"),
    "ratio": ("above", "below", "cross"),
    "gap": ("above", "below", "shift"),
}
ZONES_LINK = "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones"
_ID = re.compile(r"^#?(\d{1,9})$")


def store_of(request: Request) -> AlertStore:
    store = request.services.alerts
    if store is None:
        raise UsageError("Alerts are not available in this mode.")
    return store


def _rule_error(exc: Exception) -> UsageError:
    return UsageError(f"{esc(exc)}\nExamples: {EXAMPLES}")


def create(request: Request, text: str) -> Answer:
    from alerts.engine import current_observation, gap_series
    from alerts.observations import parse_key
    from alerts.replay import preview
    from alerts.rules import RuleError, parse_rule
    from alerts.store import QuotaExceeded

    store = store_of(request)
    try:
        spec = parse_rule(text)
    except RuleError as exc:
        raise _rule_error(exc) from None
    services = request.services
    snapshot = services.market.snapshot
    now = services.now()
    current = current_observation(snapshot, now, spec.key)
    high = None
    if spec.kind == "high":
        _, symbol = parse_key(spec.key)
        if symbol and not snapshot.series(symbol).empty:
            high = float(snapshot.series(symbol).max())
    try:
        group_id, start = store.add_rule(request.chat_id, spec, current, now, all_time_high=high)
    except QuotaExceeded as exc:
        raise UsageError(
            f"You already have the most alerts a chat can keep ({esc(exc)}). "
            "/alerts lists them; /delete ID frees a place."
        ) from None
    lines = [f"✅ Alert <b>#{group_id}</b> set: <b>{esc(spec.canonical)}</b>", esc(spec.describe())]
    if current is not None:
        lines.append(
            f"Now: {_shown(spec.key, current.value)} ({'close' if current.is_close else 'live'}, "
            f"{day(current.session)})."
        )
    else:
        lines.append("There is no fresh value for it right now: it starts judging with the next fresh one.")
    if start.already_holds:
        lines.append(f"⚠️ {esc(_holds_text(spec))}: you will be told on the next crossing.")
    if snapshot.latest_day is not None:
        try:
            seen = preview(spec, snapshot.closes, snapshot.latest_day, gap=gap_series(snapshot))
        except ValueError:
            seen = None
        if seen is not None:
            if seen.count == 0:
                lines.append("Over the last year it would not have fired at any close.")
            else:
                shown = ", ".join(day(d) for d in seen.dates[:10]) + (" …" if seen.count > 10 else "")
                lines.append(
                    f"Over the last year it would have fired {seen.count} time"
                    f"{'s' if seen.count != 1 else ''} at the close: {shown}."
                )
    lines.append(f"<i>/delete {group_id} to remove it · /alerts to list all</i>")
    return Answer("\n".join(lines))


def _shown(key: str, value: float) -> str:
    from alerts.messages import format_value

    return format_value(key, value)


def _holds_text(spec: object) -> str:
    canonical = getattr(spec, "canonical", "")
    rule = canonical.split(" · ")[0]
    label, _, rest = rule.partition(" ")
    verb = {
        "above": "already above",
        "below": "already below",
        "high": "at its high already",
        "move": "has already moved that much today",
    }.get(rest.split(" ")[0], "already there")
    level = " ".join(rest.split(" ")[1:])
    return f"{label} is {verb} {level}".rstrip()


def alert(request: Request) -> Answer:
    if not request.args:
        return guide_start()
    return create(request, " ".join(request.args))


def guide_start() -> Answer:
    buttons = tuple(Button(label, f"alert:{key}") for label, key in GUIDE_TARGETS)
    return Answer(
        f"<b>New alert</b>: what should I watch?\nOr type it in one line, e.g. {EXAMPLES}",
        keyboard=(buttons[:2], buttons[2:]),
    )


def guide_step(request: Request, data: str) -> Answer:
    """One step of the button flow: ``alert:rut`` → kinds, ``alert:rut above`` → levels, full rule → create."""
    from alerts.engine import current_observation

    words = data.split()
    if not words or words[0] not in GUIDE_KINDS:
        return guide_start()
    target = words[0]
    if len(words) == 1:
        kinds = [Button(k, f"alert:{target} {k}") for k in GUIDE_KINDS[target]]
        return Answer(
            f"<b>New alert</b> on {target.upper()}: when?", keyboard=(tuple(kinds[:3]), tuple(kinds[3:]))
        )
    kind = words[1]
    if kind not in GUIDE_KINDS[target]:
        return guide_start()
    if len(words) > 2 or kind == "high":
        return create(request, data)
    presets: list[str]
    if kind == "move":
        presets = ["1%", "2%", "3%", "5%"]
    elif kind == "drawdown":
        presets = ["5%", "10%", "15%", "20%"]
    elif kind == "shift":
        presets = ["1", "2", "3", "5"]
    else:
        from alerts.rules import parse_rule

        key = parse_rule(f"{target} above 1" if target != "gap" else "gap above 1").key
        current = current_observation(request.services.market.snapshot, request.services.now(), key)
        presets = _levels(target, kind, None if current is None else current.value)
    buttons = [Button(p, f"alert:{target} {kind} {p}") for p in presets]
    return Answer(
        f"<b>New alert</b>: {target.upper()} {kind} what level?\n"
        f"(Or type <code>/alert {target} {kind} LEVEL</code>.)",
        keyboard=(tuple(buttons),),
    )


def _levels(target: str, kind: str, value: float | None) -> list[str]:
    """Round levels around the current value: above it for 'above', below for 'below', both for 'cross'."""
    if target == "gap":
        base = 40.0 if value is None else value
        return [
            f"{round(base + d)}%"
            for d in ((2, 5) if kind == "above" else (-2, -5) if kind == "below" else (-5, 5))
        ]
    if target == "ratio":
        base = 0.4 if value is None else value
        steps = (0.02, 0.05) if kind == "above" else (-0.02, -0.05) if kind == "below" else (-0.05, 0.05)
        return [f"{base + s:.2f}" for s in steps]
    base = (2000.0 if target == "rut" else 5000.0) if value is None else value
    unit = 100 if base < 5000 else 250
    offsets = (0.05, 0.10) if kind == "above" else (-0.05, -0.10) if kind == "below" else (-0.05, 0.05)
    return [str(int(round(base * (1 + o) / unit) * unit)) for o in offsets]


def list_alerts(request: Request) -> Answer:
    store = store_of(request)
    groups = store.groups(request.chat_id)
    if not groups:
        return Answer(
            "You have no alerts. Set one with <code>/alert rut above 3000</code>, or /alert for buttons."
        )
    lines = [f"<b>Your alerts</b> ({len(groups)})"]
    buttons = []
    for g in groups:
        state = "paused" if g["paused"] else ("armed" if any(g["armed"]) else "waiting to re-arm")
        last = "" if g["last_value"] is None else f" · last {_shown(g['key'], g['last_value'])}"
        fired = f" · last alert {g['last_fired_at'][:10]}" if g["last_fired_at"] else ""
        expires = f" · until {g['expires_at'][:10]}" if g["expires_at"] else ""
        lines.append(f"<b>#{g['id']}</b> {esc(g['spec'])} — {state}{last}{fired}{expires}")
        buttons.append(Button(f"🗑 #{g['id']}", f"del:{g['id']}"))
    rows = tuple(tuple(buttons[i : i + 4]) for i in range(0, len(buttons), 4))
    return Answer("\n".join(lines), keyboard=rows)


def _group_id(request: Request, command: str) -> int | None:
    if not request.args:
        return None
    match = _ID.match(request.args[0])
    if match is None or len(request.args) > 1:
        raise UsageError(
            f"Usage: <code>/{command} ID</code>, with the number /alerts shows, e.g. <code>/{command} 12</code>."
        )
    return int(match.group(1))


def delete(request: Request) -> Answer:
    group_id = _group_id(request, "delete")
    if group_id is None:
        raise UsageError(
            "Usage: <code>/delete ID</code>, with the number /alerts shows, e.g. <code>/delete 12</code>."
        )
    return delete_answer(request, group_id)


def delete_answer(request: Request, group_id: int) -> Answer:
    if store_of(request).delete_group(request.chat_id, group_id):
        return Answer(f"🗑 Alert #{group_id} deleted.")
    return Answer(f"You have no alert #{group_id}. /alerts lists yours.")


def pause(request: Request) -> Answer:
    group_id = _group_id(request, "pause")
    changed = store_of(request).set_paused(request.chat_id, True, group_id)
    what = f"alert #{group_id}" if group_id is not None else "all your alerts"
    if not changed:
        return Answer(
            f"Nothing to pause: {what} {'is' if group_id else 'are'} paused already or missing. /alerts lists them."
        )
    return Answer(f"⏸ Paused {what}. /resume to start again.")


def resume(request: Request) -> Answer:
    group_id = _group_id(request, "resume")
    changed = store_of(request).set_paused(request.chat_id, False, group_id)
    what = f"alert #{group_id}" if group_id is not None else "your alerts"
    if not changed:
        return Answer(
            f"Nothing to resume: {what} {'is' if group_id else 'are'} not paused. /alerts lists them."
        )
    return Answer(f"▶️ Resumed {what}.")


def digest(request: Request) -> Answer:
    store = store_of(request)
    usage = "Usage: <code>/digest HH:MM</code> (your local time, see /tz) or <code>/digest off</code>."
    if not request.args:
        from bot.zones import digest_setting

        chat = store.chat(request.chat_id)
        return Answer(digest_setting(chat.zone if chat else None, chat.digest_time if chat else None))
    if len(request.args) != 1:
        raise UsageError(usage)
    arg = request.args[0].lower()
    if arg == "off":
        store.set_digest(request.chat_id, None)
        return Answer("Daily digest off.")
    match = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", arg)
    if not match:
        raise UsageError(f"“{esc(arg[:10])}” is not a time. {usage}")
    at = f"{int(match.group(1)):02d}:{match.group(2)}"
    store.set_digest(request.chat_id, at, request.services.now())
    chat = store.chat(request.chat_id)
    zone = chat.zone if chat else "America/New_York"
    return Answer(
        f"📰 Daily digest at {at} ({esc(zone)}), with the latest close. /tz changes the zone; "
        "/digest off stops it."
    )


def tz(request: Request) -> Answer:
    from bot.zones import parse_zone

    store = store_of(request)
    if len(request.args) != 1:
        chat = store.chat(request.chat_id)
        zone = chat.zone if chat else "America/New_York"
        raise UsageError(
            f"Your time zone is {esc(zone)}. Usage: <code>/tz Europe/Berlin</code> (IANA names: "
            f'<a href="{ZONES_LINK}">the list</a>).'
        )
    name = parse_zone(request.args[0])  # the tz database's spelling, or a reply naming the closest
    store.set_zone(request.chat_id, name)
    return Answer(f"🕰 Time zone set to {esc(name)}.")


COMMANDS = (
    Command(
        "alert",
        "Set an alert: a level, a move, a new high, the gap",
        "/alert RULE",
        ("/alert rut above 3000", "/alert rut move 2%", "/alert gap shift 3"),
        alert,
        group_admin_only=True,
    ),
    Command(
        "alerts", "Your alerts with their state, and delete buttons", "/alerts", ("/alerts",), list_alerts
    ),
    Command(
        "delete",
        "Delete an alert by its number",
        "/delete ID",
        ("/delete 12",),
        delete,
        group_admin_only=True,
    ),
    Command(
        "pause",
        "Pause all your alerts (or one)",
        "/pause [ID]",
        ("/pause", "/pause 12"),
        pause,
        group_admin_only=True,
    ),
    Command("resume", "Resume paused alerts", "/resume [ID]", ("/resume",), resume, group_admin_only=True),
    Command(
        "digest",
        "A daily summary after the US close, at your time",
        "/digest HH:MM|off",
        ("/digest 22:30", "/digest off"),
        digest,
        group_admin_only=True,
    ),
    Command(
        "tz",
        "Set your time zone for the digest",
        "/tz ZONE",
        ("/tz Europe/Berlin",),
        tz,
        group_admin_only=True,
    ),
)


def register(application: Application) -> None:  # type: ignore[type-arg]
    from bot.telegram import add_button_flow, add_commands

    add_commands(application, COMMANDS)
    # In groups only administrators change the group's alerts, by command or by button alike.
    add_button_flow(application, "alert", guide_step, group_admin_only=True)
    add_button_flow(application, "del", _delete_button, group_admin_only=True)


def _delete_button(request: Request, data: str) -> Answer:
    """A delete button under /alerts: delete, then show the list as it now stands."""
    match = _ID.match(data)
    if match is None:
        return Answer("That button is no longer valid. Send /alerts again.")
    done = delete_answer(request, int(match.group(1)))
    listing = list_alerts(request)
    return Answer(f"{done.text}\n\n{listing.text}", keyboard=listing.keyboard)
