"""The words of an alert: the rule, the value that crossed, when and from where, and context.

Telegram HTML, built here from plain strings (``alerts/`` knows nothing of Telegram itself). Every plain
string goes into the HTML through ``esc``, the one escape for text sent as Telegram HTML (``bot.format``
re-exports it for the command answers): names such as "S&P 500" stay plain text until then.
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from alerts.observations import (
    ALL_PREFIX,
    GAP_KEY,
    GAP_MEASURES,
    LEAD_PREFIX,
    RATIO_KEY,
    KeyParts,
    Observation,
    key_parts,
    parse_key,
)
from market.calendar import NEW_YORK
from market.instruments import PROXY_ETF, by_symbol

if TYPE_CHECKING:
    from market.cache import MarketSnapshot

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096  # Telegram's limit for one message's text
CUT_NOTE = "\n… (cut to fit Telegram's message size)"
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z-]*)[^<>]*>")


def esc(text: object) -> str:
    """``text`` as Telegram HTML text: ``&``, ``<`` and ``>`` become entities, as the Bot API asks of every
    such character that is not part of a tag or an entity (core.telegram.org/bots/api#html-style)."""
    return html.escape(str(text), quote=False)


def fit_text(text: str, limit: int = MAX_MESSAGE, note: str = CUT_NOTE) -> str:
    """``text`` itself when it fits in ``limit`` characters; else its start, cut at a line end, with every
    tag left open closed and ``note`` after it.

    The cut never falls inside a tag or an entity, and a ``<pre>`` table cut part-way is closed where the
    cut falls: what is sent is always HTML Telegram accepts, within the limit.
    """
    if len(text) <= limit:
        return text
    budget = limit - len(note)
    cut = text[:budget]
    while True:
        cut = _whole_end(cut)
        closing = _closing_tags(cut)
        if len(cut) + len(closing) <= budget:
            return cut + closing + note
        cut = cut[: budget - len(closing)]  # room for the closing tags; strictly shorter each time


def _whole_end(cut: str) -> str:
    """``cut`` ending at a line end if it has one, and never inside a tag or an entity."""
    if "\n" in cut:
        cut = cut.rsplit("\n", 1)[0]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]  # a tag cut in two
    if cut.rfind("&") > cut.rfind(";"):
        cut = cut[: cut.rfind("&")]  # an entity cut in two: a bare "&" is always escaped as &amp;
    return cut


def _closing_tags(html_text: str) -> str:
    """The closing tags for every tag ``html_text`` leaves open, innermost first."""
    open_tags: list[str] = []
    for closing, name in _TAG.findall(html_text):
        name = name.lower()
        if not closing:
            open_tags.append(name)
        elif name in open_tags:
            del open_tags[len(open_tags) - 1 - open_tags[::-1].index(name) :]
    return "".join(f"</{name}>" for name in reversed(open_tags))


_WINDOWS = {"ytd": "the year to date"}


def _window_words(window: str | None) -> str:
    window = window or ""
    if window in _WINDOWS:
        return _WINDOWS[window]
    count, unit = int(window[:-1]), {"w": "week", "m": "month", "y": "year"}[window[-1]]
    return f"{count} {unit}{'s' if count > 1 else ''}"


def format_value(key: str, value: float) -> str:
    if key == RATIO_KEY:
        return f"{value:.4f}"
    parts = key_parts(key)
    if parts.measure == "all":
        return "all hold" if value >= 1 else "not all hold"
    if parts.measure == "ratio":
        return f"{value:.4f}"
    if parts.measure in ("average", "mean"):
        return f"{(value - 1) * 100:+.2f}% from its {'mean' if parts.measure == 'mean' else 'average'}"
    if parts.measure == "averages":
        return f"{(value - 1) * 100:+.2f}% apart"
    if parts.measure == "z":
        return f"{value:+.2f}"
    if parts.measure == "window":
        return f"{value:+.2f}%"
    if key in GAP_MEASURES:
        return f"{value:.1f}%"
    if key.startswith(LEAD_PREFIX):
        return f"{value:+.1f} pts"
    if key.endswith(":move"):
        return f"{value:+.2f}%"
    if key.endswith(":drawdown"):
        return f"{value:.1f}% below the high"
    return f"{value:,.2f}"


def _what(hit: Mapping[str, Any]) -> str:
    """What happened, in plain text (escaped where it joins the message)."""
    key, kind = str(hit["key"]), str(hit["kind"])
    name = key_name(key)
    parts = key_parts(key)
    if parts.measure in ("average", "averages", "mean", "all") and kind in ("above", "below"):
        return _what_crossed(name, parts, kind == "above")
    level = format_value(key, float(hit["level"])) if not math.isnan(float(hit["level"])) else ""
    if kind == "above":
        return f"{name} rose to {level} or more"
    if kind == "below":
        return f"{name} fell to {level} or less"
    if kind == "move":
        return f"{name} moved {float(hit['level']):g}% or more today"
    if kind == "high":
        return (
            f"{name} set a new all-time closing high"
            if hit["source"] == "close"
            else f"{name} is above its all-time high"
        )
    if kind == "shift":
        return f"{name} moved {float(hit['level']):g} points or more since the last alert"
    return name


def _what_crossed(name: str, parts: KeyParts, up: bool) -> str:
    """A crossing of an average or a mean, or a combined rule coming true."""
    if parts.measure == "all":
        return "All of its conditions now hold"
    direction = "rose above" if up else "fell below"
    if parts.measure == "mean":
        return f"{name} {direction} its long-run mean"
    if parts.measure == "average":
        return f"{name} {direction} its {parts.sessions[0]}-day average"
    cross = "a golden cross" if up else "a death cross"
    return (
        f"{name}'s {parts.sessions[0]}-day average {direction} its {parts.sessions[1]}-day average ({cross})"
    )


@lru_cache(maxsize=256)  # a handful of keys, named once per process
def key_name(key: str) -> str:
    """A key's name in plain text: "The S&P 500", not HTML."""
    if key == RATIO_KEY:
        return "The RUT/SPX ratio"
    parts = key_parts(key)
    if parts.measure == "all":
        return "All of"
    if parts.measure == "window":
        return f"{key_name(parts.base or '')}'s change over {_window_words(parts.window)}"
    if parts.base is not None and parts.base.startswith(RATIO_KEY):
        ratio = "The " + "/".join(by_symbol(symbol).short for symbol in parts.pair) + " ratio"
        return f"The z-score of {ratio[0].lower()}{ratio[1:]}" if parts.measure == "z" else ratio
    if key in GAP_MEASURES:
        return f"The valuation gap on {'P/B' if key == GAP_KEY else 'P/E'}"
    if parts.measure == "leadtr":
        return f"IWM's total-return lead over SPY ({(parts.window or '').upper()})"
    if key.startswith(LEAD_PREFIX):
        return f"The Russell's lead over the S&P ({key[len(LEAD_PREFIX) :].upper()})"
    _, symbol = parse_key(key)
    return by_symbol(symbol).name if symbol else key


def _context(key: str, snapshot: MarketSnapshot, observed: Mapping[str, Observation]) -> str:
    """Today's change, distance from the high, and the equivalent ETF price, where they apply; a price
    against its average; each condition of a combined rule."""
    described = key_parts(key)
    if described.measure == "all":
        seen = [(clause, observed.get(clause.key)) for clause in described.clauses]
        return " · ".join(
            f"{key_name(c.key)} {format_value(c.key, o.value)}" for c, o in seen if o is not None
        )
    if described.measure == "average" and described.symbol is not None:
        quoted, versus = observed.get(described.symbol), observed.get(key)
        if quoted is None or versus is None or versus.value <= 0:
            return ""
        short = by_symbol(described.symbol).short
        average = quoted.value / versus.value
        return (
            f"{short} {quoted.value:,.2f} against its {described.sessions[0]}-day average of {average:,.2f}"
        )
    measure, symbol = parse_key(key)
    if (
        symbol is None
        or measure not in ("price", "move", "drawdown")
        or symbol not in snapshot.closes.columns
    ):
        return ""
    parts = []
    move = observed.get(f"{symbol}:move")
    price = observed.get(symbol)
    closes = snapshot.series(symbol)
    if move is not None and not move.stale:
        parts.append(f"today {move.value:+.2f}%")
    elif price is not None and len(closes) > 1:
        previous = float(closes.iloc[-2] if price.is_close else closes.iloc[-1])
        if previous > 0:
            parts.append(f"today {(price.value / previous - 1) * 100:+.2f}%")
    if price is not None and len(closes) and price.value > 0:
        high = max(float(closes.max()), price.value)
        below = (1 - price.value / high) * 100
        parts.append("at its all-time high" if below <= 0 else f"{below:.1f}% below its high of {high:,.2f}")
        etf = PROXY_ETF.get(symbol)
        etf_closes = snapshot.series(etf) if etf else None
        if (
            etf
            and etf_closes is not None
            and len(etf_closes)
            and etf_closes.index[-1] == closes.index[-1]
            and float(closes.iloc[-1]) > 0
        ):
            ratio = float(etf_closes.iloc[-1]) / float(closes.iloc[-1])
            parts.append(f"≈ ${price.value * ratio:,.2f} a share of {etf}")
    return " · ".join(parts)


def alert_text(
    hits: Sequence[Mapping[str, Any]],
    snapshot: MarketSnapshot,
    observed: Mapping[str, Observation],
    *,
    source: str | None,
    contexts: dict[Any, str] | None = None,
) -> list[str]:
    """One message for all of a chat's alerts from one refresh.

    ``contexts`` is a memo shared by the chats of one refresh: each key's context line (building it reads
    the whole history of its symbol), and the pieces many alerts have in common (the moment and source, a
    key's value, a rule's title and what it saw), each escaped once. Everything in it depends only on the
    snapshot, the observations and its own key."""
    memo: dict[Any, str] = {} if contexts is None else contexts
    blocks = []
    for hit in hits:
        key = str(hit["key"])
        when_key = ("when", hit["time"], hit["source"])
        when = memo.get(when_key)
        if when is None:
            moment = hit["time"].to_pydatetime() if hasattr(hit["time"], "to_pydatetime") else hit["time"]
            local = moment.astimezone(NEW_YORK)
            said = f"{'close' if hit['source'] == 'close' else 'live'}, {local.day} {local:%b %Y %H:%M} ET"
            when = memo[when_key] = f"({esc(said)} · {esc(source or 'market data')})"
        title_key = ("title", hit["spec"])
        title = memo.get(title_key)
        if title is None:
            title = memo[title_key] = f"🔔 <b>{esc(str(hit['spec']).split(' · ')[0])}</b>"
        seen_key = ("seen", key, hit["kind"], hit["level"], hit["source"], hit["value"])
        seen = memo.get(seen_key)
        if seen is None and key.startswith(ALL_PREFIX):
            seen = memo[seen_key] = esc(_what(hit))  # its conditions' values follow on the context line
        elif seen is None:
            seen = memo[seen_key] = f"{esc(_what(hit))}: <b>{esc(format_value(key, float(hit['value'])))}</b>"
        lines = [title, f"{seen} {when}"]
        context = memo.get(key)
        if context is None:
            try:
                context = esc(_context(key, snapshot, observed))
            except Exception:  # the context is a nicety: the alert itself must still go out
                log.exception("no context line for an alert on %s", key)
                context = ""
            memo[key] = context
        if context:
            lines.append(context)
        tail = (
            "This was a one-time alert; it is now deleted."
            if hit.get("once")
            else f"/delete {int(hit['group_id'])} to stop it"
        )
        lines.append(f"<i>{tail}</i>")
        blocks.append("\n".join(lines))
    return pack(blocks)


def plain_alert_text(hits: Sequence[Mapping[str, Any]]) -> list[str]:
    """The alerts in their barest form (rule, value, when), for when the full message cannot be built:
    a chat gets its alert with less context rather than none."""
    blocks = []
    for hit in hits:
        try:
            value = format_value(str(hit["key"]), float(hit["value"]))
        except (TypeError, ValueError):
            value = str(hit.get("value"))
        rule = str(hit.get("spec") or hit.get("key")).split(" · ")[0]
        blocks.append(f"🔔 <b>{esc(rule)}</b>: {esc(value)}")
    return pack(blocks)


def pack(blocks: Sequence[str], limit: int = MAX_MESSAGE) -> list[str]:
    """Blocks joined into as few messages as fit Telegram's size, never splitting a block (one too long for
    a message of its own is cut by ``fit_text``)."""
    messages: list[str] = []
    for block in blocks:
        if messages and len(messages[-1]) + 2 + len(block) <= limit:
            messages[-1] += "\n\n" + block
        else:
            messages.append(fit_text(block, limit))
    return messages


def limit_text(limit: int) -> str:
    return (
        f"⏸ <b>Daily limit reached</b>: you have had {limit} alert messages today. Further alerts today are "
        "skipped; they resume tomorrow. /alerts lists your rules; a wider band (e.g. <code>band 2%</code>) makes them quieter."
    )


def snooze_over_text(resumed: int) -> str:
    count = f"{resumed} alert{'s' if resumed != 1 else ''}"
    return f"▶️ <b>Snooze over</b>: {count} resumed. /alerts lists them; /pause 3d snoozes again."


# Where an alert's "seen" line gives the moment and the source: " (close, 18 Jan 2024 16:00 ET · …)".
_WHEN = re.compile(r" \((?:close|live), ")


def alert_summaries(text: str) -> list[str]:
    """The alerts in a message ``alert_text`` (or ``plain_alert_text``) built, one line each: the rule and
    what it saw, without the moment (whoever lists them says when it was sent). Valid Telegram HTML: each
    part is a whole line of the message, whose tags close on the line they open."""
    found = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if not lines[0].startswith("🔔"):
            continue
        rule = lines[0].removeprefix("🔔").strip()
        seen = (
            _WHEN.split(lines[1], maxsplit=1)[0] if len(lines) > 1 and not lines[1].startswith("<i>") else ""
        )
        found.append(f"{rule} — {seen}" if seen else rule)
    return found
