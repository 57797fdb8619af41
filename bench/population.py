"""A synthetic but realistic population of alert rules, stored the way ``AlertStore`` stores them.

Every rule kind over fifteen observation keys (moving averages, the golden cross, the ratio's z-score and
a combined condition among them), levels scattered around the current values (so some rules are
armed and some wait to re-arm), a mix of live and close rules, ``once`` rules, paused rules and rules with
an expiry, about five rules a chat. Rows are written straight into the ``rules`` and ``chats`` tables a real
``AlertStore`` migrated, in the store's own text encoding, so ``AlertStore(db)`` loads them as it would
rules users created one by one; building a million rules through ``add_rule`` would take an hour and
measure nothing the benchmarks are about.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlite_utils

from alerts.evaluate import ABOVE, BELOW, HIGH, KIND_NAMES, MODE_NAMES, MOVE, SHIFT, session_number
from alerts.store import AlertStore
from alerts.store.schema import BUMP_RULES_VERSION

COMBINED = "ALL:^RUT:ma200>1.0&RATIO<0.41"  # rut above ma200 and ratio below 0.41
# One row of the recipe per kind of user rule: (key, verb, share of rules, live share). A ``cross`` is two
# stored rows, like the bot stores it.
RECIPE: tuple[tuple[str, str, float, float], ...] = (
    ("^RUT", "above", 0.14, 0.9),
    ("^RUT", "below", 0.10, 0.9),
    ("^RUT", "cross", 0.06, 0.9),
    ("^GSPC", "above", 0.08, 0.9),
    ("^GSPC", "below", 0.06, 0.9),
    ("IWM", "above", 0.05, 0.9),
    ("IWM", "below", 0.04, 0.9),
    ("SPY", "above", 0.04, 0.9),
    ("^RUT:move", "move", 0.09, 0.3),
    ("^GSPC:move", "move", 0.05, 0.3),
    ("^RUT", "high", 0.05, 0.1),
    ("^GSPC", "high", 0.03, 0.1),
    ("^RUT:drawdown", "drawdown", 0.05, 0.5),
    ("RATIO", "below", 0.04, 0.9),
    ("LEAD:3m", "above", 0.04, 0.5),
    ("GAP", "above", 0.02, 0.0),
    ("GAP", "shift", 0.02, 0.0),
    # Moving averages, the golden/death cross, the ratio's z-score and a combined condition: about a tenth.
    ("^RUT:ma200", "cross", 0.03, 0.2),
    ("^GSPC:ma200", "above", 0.02, 0.2),
    ("^RUT:ma50/ma200", "cross", 0.02, 0.1),
    ("RATIO:z", "below", 0.02, 0.1),
    (COMBINED, "above", 0.02, 0.2),
)
KEYS = tuple(dict.fromkeys(key for key, *_ in RECIPE))
RULES_PER_CHAT = 5  # on average; a chat may keep up to 50
CHAT_BASE = 1_000_000_000  # chat ids of the synthetic users


@dataclass(frozen=True)
class Population:
    rows: int  # stored rule rows (a cross counts twice)
    rules: int  # user rules
    chats: int


def _level(key: str, verb: str, current: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """Levels people set: round-ish numbers a few percent either side of the value, or thresholds."""
    if verb == "high":
        return np.full(n, math.nan)  # a high rule has no level: it follows the all-time high
    if verb == "move":
        return rng.choice([1.0, 1.5, 2.0, 2.5, 3.0], size=n)
    if verb == "drawdown":
        return np.round(current + rng.normal(0.0, 3.0, n), 1).clip(1.0, 60.0)
    if verb == "shift":
        return rng.choice([2.0, 3.0, 5.0], size=n)
    if ":ma" in key or key == COMBINED:
        return np.ones(n)  # the price over its average, one average over the other, all clauses hold: 1
    if key == "RATIO:z":
        return np.round(current + rng.normal(0.0, 0.3, n), 2)
    if key == "GAP" or key.startswith("LEAD:"):
        return np.round(current + rng.normal(0.0, 2.5, n), 1)
    spread = 0.025 if key == "RATIO" else 0.04
    levels = current * np.exp(rng.normal(0.0, spread, n))
    digits = 4 if key == "RATIO" else (0 if current > 1000 else 1)
    return np.round(levels, digits)


def populate(
    store: AlertStore,
    size: int,
    current: Mapping[str, float],
    *,
    all_time_high: Mapping[str, float],
    created: datetime,
    chats: int | None = None,
    seed: int = 5,
) -> Population:
    """Write about ``size`` rule rows (every kind, ``RECIPE`` shares) into ``store``'s database.

    ``current`` is each key's value when the rules were made (their initial state follows
    ``alerts.evaluate.initial_state``); ``created`` the moment, after the close of its session, so close
    rules start with the next session. ``chats`` defaults to one for every ``RULES_PER_CHAT`` rules.
    """
    rng = np.random.default_rng(seed)
    db: sqlite_utils.Database = store.db
    shares = np.array([share for *_, share, _ in RECIPE])
    per_rule_rows = np.array([2 if verb == "cross" else 1 for _, verb, _, _ in RECIPE])
    rules = max(len(RECIPE), round(size / float(shares / shares.sum() @ per_rule_rows)))
    counts = np.maximum(1, np.round(shares / shares.sum() * rules)).astype(int)
    chats = chats or max(1, rules // RULES_PER_CHAT)
    session = session_number(created.date())
    created_text = created.astimezone(UTC).isoformat()

    columns: dict[str, list[Any]] = {name: [] for name in ("key", "kind", "level", "mode", "spec")}
    numeric: dict[str, list[np.ndarray]] = {
        name: []
        for name in ("group", "armed", "reference", "last_value", "last_session", "band", "once", "paused")
    }
    expiries: list[np.ndarray] = []
    next_group = 1
    for (key, verb, _share, live_share), n in zip(RECIPE, counts, strict=True):
        value = float(current[key])
        level = _level(key, verb, value, rng, n)
        live = rng.random(n) < live_share
        band = rng.choice([0.005, 0.01, 0.01, 0.01, 0.02], size=n)
        once = rng.random(n) < 0.1
        paused = rng.random(n) < 0.03
        # A tenth expire within 30 days of creation; a few of those already have by the refresh.
        days = np.where(rng.random(n) < 0.1, rng.integers(1, 31, n), 0)
        kinds = ("above", "below") if verb == "cross" else ((verb if verb != "drawdown" else "above"),)
        groups = np.arange(next_group, next_group + n * len(kinds), len(kinds))
        next_group += n * len(kinds)
        for kind in kinds:
            code = KIND_NAMES.index(kind)
            if code == ABOVE:
                armed = value < level
            elif code == BELOW:
                armed = value > level
            elif code == MOVE:
                armed = ~(abs(value) >= level)
            else:
                armed = np.ones(n, dtype=bool)
            if code == HIGH:
                reference = np.full(n, max(float(all_time_high[key]), value))
            elif code == SHIFT:
                reference = np.full(n, value)
            else:
                reference = np.full(n, math.nan)
            numeric["group"].append(groups)
            numeric["armed"].append(armed)
            numeric["reference"].append(reference)
            numeric["last_value"].append(np.full(n, value))
            numeric["last_session"].append(np.full(n, session))
            numeric["band"].append(band)
            numeric["once"].append(once)
            numeric["paused"].append(paused)
            expiries.append(days)
            mode_names = np.where(live, MODE_NAMES[0], MODE_NAMES[1])
            columns["key"].extend([key] * n)
            columns["kind"].extend([kind] * n)
            columns["level"].extend(level.tolist())
            columns["mode"].extend(mode_names.tolist())
            columns["spec"].extend(_specs(key, verb, level, mode_names, once, band))

    group = np.concatenate(numeric["group"])
    order = np.argsort(group, kind="stable")  # rule ids in creation order, a cross's two rows together
    total = len(order)
    # Chats own runs of consecutive rules, as if each user set theirs in one sitting.
    chat_of_group = CHAT_BASE + np.sort(rng.integers(0, chats, next_group))
    days = np.concatenate(expiries)[order]
    expires = [
        None if d == 0 else (created + timedelta(days=int(d))).astimezone(UTC).isoformat() for d in days
    ]
    picked = {name: np.concatenate(parts)[order] for name, parts in numeric.items()}
    text = {name: [values[i] for i in order] for name, values in columns.items()}
    rows = zip(
        range(1, total + 1),
        chat_of_group[picked["group"]].tolist(),
        picked["group"].tolist(),
        text["spec"],
        text["key"],
        text["kind"],
        text["level"],
        picked["band"].tolist(),
        text["mode"],
        picked["once"].astype(int).tolist(),
        expires,
        picked["paused"].astype(int).tolist(),
        picked["armed"].astype(int).tolist(),
        [None if r != r else r for r in picked["reference"].tolist()],
        picked["last_value"].tolist(),
        picked["last_session"].tolist(),
        strict=True,
    )
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO chats (chat_id, type, zone, active, created_at) VALUES (?, 'private', ?, 1, ?)",
            [
                (CHAT_BASE + i, "Europe/Berlin" if i % 3 else "America/New_York", created_text)
                for i in range(chats)
            ],
        )
        db.conn.executemany(
            "INSERT INTO rules (rule_id, chat_id, group_id, spec, key, kind, level, band, mode, once, "
            "expires_at, paused, status, armed, reference, last_value, last_fired_session, last_session, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, -1, ?, ?)",
            ((*row, created_text) for row in rows),
        )
        db.execute(BUMP_RULES_VERSION)  # as every write to the rules does: a snapshot of others is stale
    return Population(rows=total, rules=int(counts.sum()), chats=chats)


_LABELS = {"^RUT": "RUT", "^GSPC": "SPX", "IWM": "IWM", "SPY": "SPY"}


def _specs(
    key: str, verb: str, level: np.ndarray, modes: np.ndarray, once: np.ndarray, band: np.ndarray
) -> list[str]:
    """The canonical text ``alerts.rules.RuleSpec.canonical`` gives each rule (what an alert quotes)."""
    symbol = key.split(":")[0]
    label = _LABELS.get(symbol, symbol.lower())
    out = []
    for value, mode, is_once, width in zip(
        level.tolist(), modes.tolist(), once.tolist(), band.tolist(), strict=True
    ):
        if key == COMBINED:
            rule = "RUT above ma200 and ratio below 0.41"
        elif ":ma" in key:
            average = key.split(":", 1)[1]
            rule = (
                f"{label} {average.split('/')[0]} {verb} ma200"
                if "/" in average
                else f"{label} {verb} {average}"
            )
        elif key == "RATIO:z":
            rule = f"ratio z {verb} {value:g}"
        elif verb == "high":
            rule = f"{label} high"
        elif verb in ("move", "drawdown"):
            rule = f"{label} {verb} {value:g}%"
        elif key == "RATIO":
            rule = f"ratio {verb} {value:g}"
        elif key == "GAP":
            rule = f"gap {verb} {value:g}{'' if verb == 'shift' else '%'}"
        elif key.startswith("LEAD:"):
            rule = f"lead {value:+g}% {key[5:]}"
        else:
            rule = f"{label} {verb} {value:,.0f}" if value >= 1000 else f"{label} {verb} {value:g}"
        parts = [rule, mode]
        if is_once:
            parts.append("once")
        if verb not in ("move", "shift") and key != COMBINED:
            parts.append(f"band {width * 100:g}%")
        out.append(" · ".join(parts))
    return out
