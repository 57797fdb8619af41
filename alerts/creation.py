"""Setting an alert: the rule read from its text, stored with its start against the market now, and what it
would have done over the last year. What ``/alert`` replies is worded from this in bot/; the facts are here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from alerts.engine import current_observation, gap_series, keys_without_data
from alerts.observations import Observation, parse_key
from alerts.replay import Preview, preview
from alerts.rules import RuleSpec, parse_rule

if TYPE_CHECKING:
    from alerts.evaluate import InitialState
    from alerts.store import AlertStore
    from market.cache import MarketSnapshot


@dataclass(frozen=True)
class NewAlert:
    """A rule just stored for a chat, and what the chat should be told about its start."""

    number: int  # the chat's own number for it (/delete takes it)
    spec: RuleSpec
    start: InitialState  # ``start.already_holds``: it waits for the next crossing (``start.value`` now)
    current: Observation | None  # the value it starts from; None when there is no fresh one
    high: float | None  # the all-time closing high, for a ``high`` or ``drawdown`` rule
    # No data to judge it on: True when its key has no recent value (``last_data`` is the last one it had,
    # None if it never had one). It is kept, and judged once data arrives.
    without_data: bool
    last_data: date | None
    # The closes it would have fired at over the last year (up to ``last_data`` when the key's data ended
    # before the latest close); None when there is no history to run it over.
    preview: Preview | None


def create_rule(
    store: AlertStore, snapshot: MarketSnapshot, now: datetime, chat_id: int, text: str
) -> NewAlert:
    """Read ``text`` as a rule and store it for ``chat_id``, started against ``snapshot`` at ``now``.

    Raises ``alerts.rules.RuleError`` for text that is no rule, ``alerts.store.QuotaExceeded`` and
    ``alerts.store.DuplicateRule`` when the chat may not have it; in each case nothing is stored.
    """
    spec = parse_rule(text)
    current = current_observation(snapshot, now, spec.key)
    high = None
    if spec.kind in ("high", "drawdown"):
        _, symbol = parse_key(spec.key)
        if symbol and not snapshot.series(symbol).empty:
            high = float(snapshot.series(symbol).max())
    number, start = store.rules.add(
        chat_id, spec, current, now, all_time_high=high if spec.kind == "high" else None
    )
    missing = keys_without_data(snapshot, [spec.key]) if current is None else {}
    last_data = missing.get(spec.key)
    return NewAlert(
        number=number,
        spec=spec,
        start=start,
        current=current,
        high=high,
        without_data=spec.key in missing,
        last_data=last_data,
        preview=_preview(spec, snapshot, spec.key in missing, last_data),
    )


def _preview(
    spec: RuleSpec, snapshot: MarketSnapshot, without: bool, last_data: date | None
) -> Preview | None:
    """The last year's closes ``spec`` would have fired at; None when the key never had data, or its data
    ended before the year began (nothing to run it over)."""
    if snapshot.latest_day is None or (without and last_data is None):
        return None
    try:
        seen = preview(spec, snapshot.closes, snapshot.latest_day, gap=gap_series(snapshot))
    except ValueError:  # the closes have no column for the rule's symbol
        return None
    if last_data is not None and last_data < seen.start:
        return None
    return seen


def starting_value(snapshot: MarketSnapshot, now: datetime, text: str) -> float | None:
    """The value a rule written as ``text`` would start from now (what /alert's level buttons centre on);
    None when there is no fresh one."""
    current = current_observation(snapshot, now, parse_rule(text).key)
    return None if current is None else current.value
