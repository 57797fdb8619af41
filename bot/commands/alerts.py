"""/alert, /alerts, /delete, /pause, /resume, /digest, /tz: rules a chat sets and how it hears of them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from alerts.creation import NewAlert, create_rule, starting_value
from alerts.engine import current_observation, keys_without_data
from alerts.messages import format_value, key_name
from alerts.observations import GAP_KEY, GAP_MEASURES, parse_key
from alerts.rules import ALL_OF, GAP, LEAD, PEGAP, RATIO, RuleError
from alerts.store import MAX_GROUPS_PER_CHAT, ChatAlert, DuplicateRule, QuotaExceeded
from bot.answers import GROUP_CHATS, Answer, Button, ButtonFlow, Command, Request, UsageError
from bot.commands.history import local_time
from bot.commands.valuation import next_reading
from bot.format import day, esc
from bot.zones import DEFAULT_ZONE, digest_setting, parse_zone
from market.instruments import by_symbol

if TYPE_CHECKING:
    from datetime import date

    from alerts.rules import RuleSpec

EXAMPLES = (
    "<code>/alert rut above 3000</code>, <code>/alert spx below 4500 once</code>, <code>/alert rut cross 2000 close</code>, "
    "<code>/alert rut move 2%</code>, <code>/alert rut high</code>, <code>/alert rut drawdown 10%</code>, "
    "<code>/alert ratio below 0.40</code>, <code>/alert lead 5% 3m</code>, <code>/alert gap shift 3</code>, "
    "<code>/alert pegap above 40%</code>, <code>/alert rut cross ma200</code>, <code>/alert rut ma50 cross ma200</code>, "
    "<code>/alert ratio z below -1.5</code>, <code>/alert rut move 5% 1w</code>, "
    "<code>/alert rut above ma200 and ratio below 0.40</code>"
)
GUIDE_TARGETS = (
    ("Russell 2000", "rut"),
    ("S&P 500", "spx"),
    ("RUT/SPX ratio", "ratio"),
    ("Gap on P/B", "gap"),
    ("Gap on P/E", "pegap"),
)
GUIDE_KINDS = {
    "rut": ("above", "below", "cross", "move", "high", "drawdown"),
    "spx": ("above", "below", "cross", "move", "high", "drawdown"),
    "ratio": ("above", "below", "cross"),
    "gap": ("above", "below", "shift"),
    "pegap": ("above", "below", "shift"),
}
# Whole rules offered as one button each, under a target's kinds.
GUIDE_READY = {
    "rut": (
        ("Crosses its 200-day average", "rut cross ma200"),
        ("Golden/death cross", "rut ma50 cross ma200"),
    ),
    "spx": (
        ("Crosses its 200-day average", "spx cross ma200"),
        ("Golden/death cross", "spx ma50 cross ma200"),
    ),
    "ratio": (
        ("z-score below −1.5", "ratio z below -1.5"),
        ("Crosses its long-run mean", "ratio cross mean"),
    ),
}
_READY = {rule for pairs in GUIDE_READY.values() for _, rule in pairs}
ZONES_LINK = "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones"
_ID = re.compile(r"^#?(\d{1,9})$")


def _rule_error(exc: Exception) -> UsageError:
    return UsageError(f"{esc(exc)}\nExamples: {EXAMPLES}")


def _set(request: Request, text: str) -> NewAlert:
    services = request.services
    return create_rule(services.alerts, services.market.snapshot, services.now(), request.chat_id, text)


def _quota_text(exc: QuotaExceeded) -> str:
    return f"You already have the most alerts a chat can keep ({esc(exc)}). /alerts lists them; /delete ID frees a place."


def _duplicate_text(request: Request, exc: DuplicateRule) -> str:
    return f"{_owner(request)} already {_has(request)} <b>#{exc.number}</b>: {esc(exc.spec)}. Nothing changed"


def create(request: Request, text: str) -> Answer:
    try:
        made = _set(request, text)
    except RuleError as exc:
        raise _rule_error(exc) from None
    except QuotaExceeded as exc:
        raise UsageError(_quota_text(exc)) from None
    except DuplicateRule as exc:
        raise UsageError(f"{_duplicate_text(request, exc)}; /alerts lists them.") from None
    spec, current = made.spec, made.current
    lines = [f"✅ Alert <b>#{made.number}</b> set: <b>{esc(spec.canonical)}</b>", esc(spec.describe())]
    if current is not None and spec.target == ALL_OF:
        lines.append(
            f"Now: {esc(_clauses_now(request, spec))} ({'close' if current.is_close else 'live'}, {day(current.session)})."
        )
    elif current is not None:
        lines.append(
            f"Now: {_shown(spec.key, current.value)} ({'close' if current.is_close else 'live'}, "
            f"{day(current.session)})."
        )
    elif made.without_data:
        lines.append(
            f"⚠️ {esc(_no_data_sentence(spec.key, made.last_data))}. "
            "The alert cannot be judged until data arrives: it is kept, and judged from then on."
        )
    else:
        lines.append("There is no fresh value for it right now: it starts judging with the next fresh one.")
    if made.start.already_holds:
        lines.append(
            f"⚠️ {esc(_holds_text(spec, made.start.value, made.high))}: you will be told on the next crossing."
        )
    if spec.key in GAP_MEASURES:
        lines.append(_readings_text(request, spec.key, made.readings))
    seen = made.preview
    if spec.key in GAP_MEASURES and not made.readings:
        lines.append(
            "Over the last year: no recorded history yet, so nothing to say how often it would fire."
        )
    elif seen is not None:
        ended = made.last_data if made.without_data else None
        span = "Over the last year" if ended is None else f"Over the last year, up to {day(ended)},"
        if made.readings:
            span += f" (on its recorded readings since {day(made.readings[0])})"
        if seen.count == 0:
            lines.append(f"{span} it would not have fired at any close.")
        else:
            shown = ", ".join(day(d) for d in seen.dates[:10]) + (" …" if seen.count > 10 else "")
            lines.append(
                f"{span} it would have fired {seen.count} time"
                f"{'s' if seen.count != 1 else ''} at the close: {shown}."
            )
    lines.append(f"<i>/delete {made.number} to remove it · /alerts to list all</i>")
    return Answer("\n".join(lines))


def _clauses_now(request: Request, spec: RuleSpec) -> str:
    """Each condition of a combined rule with its value now."""
    services = request.services
    parts = []
    for clause in spec.clauses:
        seen = current_observation(services.market.snapshot, services.now(), clause.key)
        value = "no fresh value" if seen is None else format_value(clause.key, seen.value)
        parts.append(f"{clause.label} {value}")
    return "; ".join(parts)


def _readings_text(request: Request, key: str, readings: tuple[date, ...]) -> str:
    """How many trusted readings a gap rule has to go on, and when the next one can come."""
    label = "P/B" if key == GAP_KEY else "P/E"
    if not readings:
        have = f"No trusted {label} reading is recorded yet."
    else:
        count = f"{len(readings)} trusted {label} reading{'s' if len(readings) != 1 else ''}"
        have = f"{count} recorded, the last on {day(readings[-1])}; it is judged once on each new one."
    return f"{have} {next_reading(request.services)}"


def _shown(key: str, value: float) -> str:
    return format_value(key, value)


def _in_group(request: Request) -> bool:
    return request.chat_type in GROUP_CHATS


def _owner(request: Request) -> str:
    return "This group" if _in_group(request) else "You"


def _has(request: Request) -> str:
    return "has" if _in_group(request) else "have"


def _no_data_sentence(key: str, last: date | None) -> str:
    """Why a rule on ``key`` cannot be judged: "There is no VTWO close since 14 Apr 2023"."""
    measure, arg = parse_key(key)
    if measure == "gap":
        label = "P/B" if key == GAP_KEY else "P/E"
        pairs = "IWM/IVV or VTWO/VOO"
        if last is None:
            return f"There is no valuation gap on {label} yet: no trusted {label} reading of {pairs}"
        return f"There is no valuation gap on {label} since {day(last)}, the last trusted {label} reading of {pairs}"
    if measure == "ratio" and arg is None:
        name = "RUT/SPX ratio"
    elif measure == "lead":
        name = f"{arg} lead of RUT over SPX"
    elif measure == "leadtr":
        name = f"{arg} total-return lead of IWM over SPY (adjusted closes)"
    elif measure == "price":
        name = f"{by_symbol(arg).short if arg else key} close"
    else:
        name = key_name(key).removeprefix("The ")
        name = f"value of {name[:1].lower()}{name[1:]}" if measure == "all" else name
    return f"There is no {name} yet" if last is None else f"There is no {name} since {day(last)}"


def _holds_text(spec: RuleSpec, value: float, high: float | None) -> str:
    """Why a new rule waits for the next crossing: its condition already holds, with the figures."""
    if spec.target == ALL_OF:
        return "All of its conditions hold already"
    if spec.windowed_move:
        return (
            f"{spec.label} has already moved {value:+.2f}% over {spec.window}, at least the "
            f"{spec.level_text} it watches for"
        )
    if spec.measure is not None:
        return f"{key_name(spec.key)} is already {spec.kind} {spec.level_text} ({_shown(spec.key, value)})"
    if spec.target == LEAD:
        of = "total-return lead of IWM over SPY" if spec.measure else "lead of RUT over SPX"
        subject = f"The {spec.window} {of} ({_shown(spec.key, value)})"
    elif spec.target == RATIO:
        subject = f"The RUT/SPX ratio ({_shown(spec.key, value)})"
    elif spec.target in (GAP, PEGAP):
        subject = f"The valuation gap on {'P/B' if spec.target == GAP else 'P/E'} ({_shown(spec.key, value)})"
    else:
        subject = spec.label
    if spec.kind == "drawdown":
        of_high = "" if high is None else f" of {high:,.2f}"
        return (
            f"{spec.label} is already {value:.1f}% below its all-time closing high{of_high}, "
            f"more than the {spec.level_text} this alert watches for"
        )
    if spec.kind == "move":
        return f"{spec.label} has already moved {value:+.2f}% today, at least the {spec.level_text} it watches for"
    if spec.kind == "high":
        return f"{spec.label} is at its all-time closing high already"
    if spec.kind in ("above", "below"):
        return f"{subject} is already {spec.kind} {spec.level_text}"
    return f"{subject} is already past {spec.level_text}"


def alert(request: Request) -> Answer:
    if not request.args:
        return guide_start()
    lines = rule_lines(request.text or " ".join(request.args))
    if len(lines) == 1:
        return create(request, lines[0])
    return create_each(request, lines)


def rule_lines(text: str) -> list[str]:
    """The rules in ``text``, one a line; a line may start with /alert itself (as /export writes them)."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0].lower().split("@", 1)[0] == "/alert":
            words = words[1:]
        if words:
            found.append(" ".join(words))
    return found


def create_each(request: Request, lines: list[str]) -> Answer:
    """Several rules at once (a pasted /export): each line set on its own, each with its outcome; a line
    that cannot be set changes nothing and says why. At most a chat's quota of lines is read."""
    report, made = [], 0
    for number, line in enumerate(lines[:MAX_GROUPS_PER_CHAT], 1):
        try:
            new = _set(request, line)
        except RuleError as exc:
            report.append(f"❌ Line {number}, “{esc(line[:40])}”: {esc(exc)}")
        except QuotaExceeded as exc:
            report.append(f"❌ Line {number}: not set. {_quota_text(exc)}")
        except DuplicateRule as exc:
            report.append(f"➖ Line {number}: {_duplicate_text(request, exc)}.")
        else:
            made += 1
            waits = (
                " (its condition holds already: it waits for the next crossing)"
                if new.start.already_holds
                else ""
            )
            report.append(f"✅ Line {number}: <b>#{new.number}</b> {esc(new.spec.canonical)}{waits}")
    if len(lines) > MAX_GROUPS_PER_CHAT:
        report.append(
            f"Lines after the {MAX_GROUPS_PER_CHAT}th were not read: a chat keeps at most "
            f"{MAX_GROUPS_PER_CHAT} alerts."
        )
    head = f"<b>{made} of {len(lines)} alerts set</b>, one per line:"
    return Answer("\n".join([head, *report, "<i>/alerts lists them all</i>"]))


def guide_start() -> Answer:
    buttons = tuple(Button(label, f"alert:{key}") for label, key in GUIDE_TARGETS)
    return Answer(
        f"<b>New alert</b>: what should I watch?\nOr type it in one line, e.g. {EXAMPLES}",
        keyboard=(buttons[:2], buttons[2:3], buttons[3:]),
    )


def guide_step(request: Request, data: str) -> Answer:
    """One step of the button flow: ``alert:rut`` → kinds, ``alert:rut above`` → levels, full rule → create."""
    words = data.split()
    if not words or words[0] not in GUIDE_KINDS:
        return guide_start()
    if data in _READY:
        return create(request, data)
    target = words[0]
    if len(words) == 1:
        kinds = [Button(k, f"alert:{target} {k}") for k in GUIDE_KINDS[target]]
        ready = tuple(Button(label, f"alert:{rule}") for label, rule in GUIDE_READY.get(target, ()))
        rows = tuple(row for row in (tuple(kinds[:3]), tuple(kinds[3:]), ready) if row)
        return Answer(f"<b>New alert</b> on {target.upper()}: when?", keyboard=rows)
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
        now = starting_value(request.services.market.snapshot, request.services.now(), f"{target} above 1")
        presets = _levels(target, kind, now)
    buttons = [Button(p, f"alert:{target} {kind} {p}") for p in presets]
    return Answer(
        f"<b>New alert</b>: {target.upper()} {kind} what level?\n"
        f"(Or type <code>/alert {target} {kind} LEVEL</code>.)",
        keyboard=(tuple(buttons),),
    )


def _levels(target: str, kind: str, value: float | None) -> list[str]:
    """Round levels around the current value: above it for 'above', below for 'below', both for 'cross'."""
    if target in ("gap", "pegap"):
        base = (40.0 if target == "gap" else 30.0) if value is None else value
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


PAGE_SIZE = 10  # alerts per /alerts page; more get ◀ ▶ buttons
_PAGE = re.compile(r"^([1-9]\d{0,2})$")
# A delete button's data: the alert's number, its first row's key (never reused, so an old button can only
# ever name the alert it was made for) and the page to show after.
_DELETE = re.compile(r"^([1-9]\d{0,8}) ([1-9]\d{0,18}) ([1-9]\d{0,2})$")


def list_alerts(request: Request) -> Answer:
    return alerts_page(request, 1)


def alerts_page(request: Request, page: int, note: str = "") -> Answer:
    """One page of the chat's alerts with a delete button for each, ◀ ▶ between pages; ``note`` (the
    outcome of a button) goes above it. A page past the end shows the last one: the list may have shrunk."""
    store = request.services.alerts
    groups = store.rules.groups(request.chat_id)
    lead = f"{note}\n\n" if note else ""
    if not groups:
        return Answer(
            f"{lead}{_owner(request)} {_has(request)} no alerts. Set one with "
            "<code>/alert rut above 3000</code>, or /alert for buttons."
        )
    pages = -(-len(groups) // PAGE_SIZE)
    page = min(max(page, 1), pages)
    shown = groups[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    missing = keys_without_data(request.services.market.snapshot, [g.key for g in shown])
    title = "This group's alerts" if _in_group(request) else "Your alerts"
    where = f" · page {page} of {pages}" if pages > 1 else ""
    lines = [f"{lead}<b>{title}</b> ({len(groups)}){where}"]
    buttons = []
    for g in shown:
        lines.append(f"<b>#{g.number}</b> {esc(g.spec)} — {_state(g, missing)}")
        buttons.append(Button(f"🗑 #{g.number}", f"delete:{g.number} {g.rule_id} {page}"))
    rows = [tuple(buttons[i : i + 5]) for i in range(0, len(buttons), 5)]
    if pages > 1:
        turn = []
        if page > 1:
            turn.append(Button("◀", f"alerts:{page - 1}"))
        if page < pages:
            turn.append(Button("▶", f"alerts:{page + 1}"))
        rows.append(tuple(turn))
    return Answer("\n".join(lines), keyboard=tuple(rows))


def _state(group: ChatAlert, missing: dict[str, date | None]) -> str:
    """A listed alert's state: paused, without data to judge, armed or waiting, and what it last saw."""
    key = group.key
    if key in missing:
        last = missing[key]
        judged = "no data yet" if last is None else f"no data since {day(last)}"
        state = f"paused · {judged}" if group.paused else judged
    elif group.paused:
        state = "paused"
    else:
        state = "armed" if any(group.armed) else "waiting to re-arm"
    value = group.last_value
    last_seen = "" if value is None or key in missing else f" · last {_shown(key, value)}"
    fired = f" · last alert {group.last_fired_at[:10]}" if group.last_fired_at else ""
    expires = f" · until {group.expires_at[:10]}" if group.expires_at else ""
    return f"{state}{last_seen}{fired}{expires}"


def _group_id(request: Request, command: str, other: str = "") -> int | None:
    if not request.args:
        return None
    match = _ID.match(request.args[0])
    if match is None or len(request.args) > 1:
        also = f"; or {other}" if other else ""
        raise UsageError(
            f"Usage: <code>/{command} ID</code>, with the number /alerts shows, e.g. "
            f"<code>/{command} 12</code>{also}."
        )
    return int(match.group(1))


def delete(request: Request) -> Answer:
    group_id = _group_id(request, "delete")
    if group_id is None:
        raise UsageError(
            "Usage: <code>/delete ID</code>, with the number /alerts shows, e.g. <code>/delete 12</code>."
        )
    return Answer(delete_answer(request, group_id))


def delete_answer(request: Request, number: int, rule_id: int | None = None) -> str:
    """Delete the chat's alert ``number`` (with ``rule_id``: only if it is still the alert a button was made
    for) and say what was deleted, or why nothing was."""
    store = request.services.alerts
    deleted = store.rules.delete_group(request.chat_id, number, rule_id)
    if deleted is not None:
        return f"🗑 Deleted #{number}: {esc(deleted)}"
    if rule_id is not None and _active(request, number):
        return "That button is for an alert that no longer exists: nothing was deleted."
    reason = _gone(request, number)
    return f"{reason[0].upper()}{reason[1:]}: nothing to delete. /alerts lists them."


def _active(request: Request, number: int) -> ChatAlert | None:
    return next(
        (g for g in request.services.alerts.rules.groups(request.chat_id) if g.number == number), None
    )


def _gone(request: Request, number: int) -> str:
    """Why the chat's alert ``number`` cannot be acted on: it never existed, or how it ended."""
    store = request.services.alerts
    if number < 1 or number > store.chats.last_number(request.chat_id):
        return f"{_owner(request).lower()} {_has(request)} no alert #{number}"
    ended = store.rules.finished(request.chat_id, number)
    if ended == "done":
        return f"alert #{number} already fired and finished (it was set to fire once)"
    if ended == "expired":
        return f"alert #{number} has expired"
    return f"alert #{number} was deleted before"


# A snooze: /pause 12h, /pause 3d, /pause 2w; from an hour to a quarter of a year.
_SNOOZE = re.compile(r"^([1-9]\d{0,3})([hdw])$")
_SNOOZE_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_SNOOZE = timedelta(days=91)
SNOOZE_USAGE = (
    "a time to snooze them all for: <code>/pause 3d</code> (also <code>12h</code>, <code>2w</code>)"
)


def pause(request: Request) -> Answer:
    length = snooze_length(request.args)
    if length is not None:
        return snooze(request, length)
    return _set_paused(request, True)


def snooze_length(args: tuple[str, ...]) -> timedelta | None:
    """The snooze ``args`` ask for ('3d', '12h', '2w'), or None when they ask for none."""
    match = _SNOOZE.match(args[0].lower()) if len(args) == 1 else None
    if match is None:
        return None
    length = int(match.group(1)) * _SNOOZE_UNITS[match.group(2)]
    if length > MAX_SNOOZE:
        raise UsageError(
            f"A snooze lasts at most {MAX_SNOOZE.days} days; <code>/pause</code> alone pauses for good."
        )
    return length


def snooze(request: Request, length: timedelta) -> Answer:
    """Pause the chat's alerts for ``length``; they resume by themselves (bot/jobs.py ends snoozes)."""
    store = request.services.alerts
    until = request.services.now() + length
    store.snooze_chat(request.chat_id, until)
    snoozed = store.chats.snooze(request.chat_id)
    whose = "the group's" if _in_group(request) else "your"
    if snoozed is None or not snoozed.numbers:
        store.chats.end_snooze(request.chat_id)
        return Answer(
            f"Nothing to snooze: {whose} alerts are all paused already, or there are none. /alerts lists them."
        )
    chat = store.chats.get(request.chat_id)
    zone = chat.zone if chat else DEFAULT_ZONE
    count = f"{len(snoozed.numbers)} alert{'s' if len(snoozed.numbers) != 1 else ''}"
    return Answer(
        f"⏸ Snoozed {whose} alerts ({count}) until {esc(local_time(until, zone))}. They resume by "
        "themselves then; /resume ends the snooze now."
    )


def resume(request: Request) -> Answer:
    return _set_paused(request, False)


def _set_paused(request: Request, paused: bool) -> Answer:
    verb = "pause" if paused else "resume"
    number = _group_id(request, verb, SNOOZE_USAGE if paused else "")
    store = request.services.alerts
    if number is not None:
        group = _active(request, number)
        if group is None:
            return Answer(f"Nothing to {verb}: {_gone(request, number)}. /alerts lists them.")
        if paused and store.release_from_snooze(request.chat_id, number):
            return Answer(f"⏸ Alert #{number} stays paused when the snooze ends: {esc(group.spec)}.")
        if not store.rules.set_paused(request.chat_id, paused, number):
            return Answer(
                f"Nothing to {verb}: alert #{number} is {'paused already' if paused else 'not paused'}."
            )
        done = f"⏸ Paused alert #{number}" if paused else f"▶️ Resumed alert #{number}"
        then = " /resume to start again." if paused else ""
        return Answer(f"{done}: {esc(group.spec)}.{then}")
    snoozed = store.chats.snooze(request.chat_id)
    changed = store.set_chat_paused(request.chat_id, paused)  # for good: a snooze ends either way
    whose = "the group's" if _in_group(request) else "your"
    if not changed:
        state = "paused already" if paused else "not paused"
        return Answer(f"Nothing to {verb}: {whose} alerts are {state} or there are none. /alerts lists them.")
    count = f"{changed} alert{'s' if changed != 1 else ''}"
    if paused:
        return Answer(f"⏸ Paused all {whose} alerts ({count}). /resume to start again.")
    ended = " The snooze is over." if snoozed is not None else ""
    return Answer(f"▶️ Resumed {whose} alerts ({count}).{ended}")


def digest(request: Request) -> Answer:
    store = request.services.alerts
    usage = "Usage: <code>/digest HH:MM</code> (your local time, see /tz) or <code>/digest off</code>."
    if not request.args:
        chat = store.chats.get(request.chat_id)
        return Answer(digest_setting(chat.zone if chat else None, chat.digest_time if chat else None))
    if len(request.args) != 1:
        raise UsageError(usage)
    arg = request.args[0].lower()
    if arg == "off":
        store.chats.set_digest(request.chat_id, None)
        return Answer("Daily digest off.")
    match = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", arg)
    if not match:
        raise UsageError(f"“{esc(arg[:10])}” is not a time. {usage}")
    at = f"{int(match.group(1)):02d}:{match.group(2)}"
    store.chats.set_digest(request.chat_id, at, request.services.now())
    chat = store.chats.get(request.chat_id)
    zone = chat.zone if chat else DEFAULT_ZONE
    return Answer(
        f"📰 Daily digest at {at} ({esc(zone)}), with the latest close. /tz changes the zone; "
        "/digest off stops it."
    )


def tz(request: Request) -> Answer:
    store = request.services.alerts
    if len(request.args) != 1:
        chat = store.chats.get(request.chat_id)
        zone = chat.zone if chat else DEFAULT_ZONE
        raise UsageError(
            f"Your time zone is {esc(zone)}. Usage: <code>/tz Europe/Berlin</code> (IANA names: "
            f'<a href="{ZONES_LINK}">the list</a>).'
        )
    name = parse_zone(request.args[0])  # the tz database's spelling, or a reply naming the closest
    store.chats.set_zone(request.chat_id, name)
    return Answer(f"🕰 Time zone set to {esc(name)}.")


COMMANDS = (
    Command(
        "alert",
        "Set an alert: a level, a move, a new high, the gap (several: one a line)",
        "/alert RULE",
        ("/alert rut above 3000", "/alert rut move 2%", "/alert gap shift 3", "/alert pegap below 30%"),
        alert,
        group_admin_only=True,
    ),
    Command(
        "alerts",
        "Your alerts with their state, and delete buttons",
        "/alerts",
        ("/alerts",),
        list_alerts,
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
        "Pause all your alerts (or one), or snooze them: /pause 3d",
        "/pause [ID | 12h | 3d | 2w]",
        ("/pause", "/pause 12", "/pause 3d"),
        pause,
        group_admin_only=True,
    ),
    Command(
        "resume",
        "Resume paused alerts, or end a snooze",
        "/resume [ID]",
        ("/resume",),
        resume,
        group_admin_only=True,
    ),
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


def _page_button(request: Request, data: str) -> Answer:
    match = _PAGE.match(data)
    if match is None:
        return Answer("That button is no longer valid. Send /alerts again.")
    return alerts_page(request, int(match.group(1)))


def _delete_button(request: Request, data: str) -> Answer:
    """A delete button under /alerts: delete that very alert, then show the list as it now stands."""
    match = _DELETE.match(data)
    if match is None:
        return Answer("That button is no longer valid. Send /alerts again.")
    number, rule_id, page = (int(part) for part in match.groups())
    return alerts_page(request, page, note=delete_answer(request, number, rule_id))


def _old_delete_button(request: Request, data: str) -> Answer:
    """Delete buttons from before alert numbers were each chat's own carry an old number that may now
    name another alert: they delete nothing."""
    return alerts_page(
        request, 1, note="That button is from an older list and no longer valid: nothing was deleted."
    )


# In groups only administrators change the group's alerts, by command or by button alike; anyone may turn
# the pages of the list.
BUTTONS = (
    ButtonFlow("alert", guide_step, group_admin_only=True),
    ButtonFlow("alerts", _page_button),
    ButtonFlow("delete", _delete_button, group_admin_only=True),
    ButtonFlow("del", _old_delete_button, group_admin_only=True),
)
