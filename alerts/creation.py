"""Setting an alert: the rule read from its text, stored with its start against the market now, and what it
would have done over the last year. What ``/alert`` replies is worded from this in bot/; the facts are here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import numpy as np

from alerts.engine import current_observation, gap_series
from alerts.observations import GAP_KEY, GAP_MEASURES, PEGAP_KEY, Observation, parse_key
from alerts.replay import Preview, preview, without_data
from alerts.rules import RuleSpec, parse_rule

if TYPE_CHECKING:
    import pandas as pd

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
    # A valuation-gap rule: the dates of the trusted readings of its gap on record, oldest first (empty
    # when there is none yet, and for every other rule). Its preview runs over these.
    readings: tuple[date, ...] = ()


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
    gap, pegap = (gap_series(snapshot.funds, key) for key in (GAP_KEY, PEGAP_KEY))
    number, start = store.rules.add(
        chat_id, spec, current, now, all_time_high=high if spec.kind == "high" else None
    )
    missing = (
        without_data(
            [spec.key], snapshot.closes, snapshot.latest_day, gap=gap, pegap=pegap, adjusted=snapshot.adjusted
        )
        if current is None
        else {}
    )
    last_data = missing.get(spec.key)
    recorded = {GAP_KEY: gap, PEGAP_KEY: pegap}.get(spec.key)
    readings = () if recorded is None else _trusted_dates(recorded)
    return NewAlert(
        number=number,
        spec=spec,
        start=start,
        current=current,
        high=high,
        without_data=spec.key in missing,
        last_data=last_data,
        preview=_preview(spec, snapshot, (gap, pegap), spec.key in missing, last_data, readings),
        readings=readings,
    )


def _trusted_dates(history: pd.Series) -> tuple[date, ...]:
    known = history[np.isfinite(history.to_numpy(dtype="float64"))]
    return tuple(stamp.date() for stamp in known.index)


def _preview(
    spec: RuleSpec,
    snapshot: MarketSnapshot,
    gaps: tuple[pd.Series | None, pd.Series | None],
    without: bool,
    last_data: date | None,
    readings: tuple[date, ...],
) -> Preview | None:
    """The last year's closes ``spec`` would have fired at; None when the key never had data, or its data
    ended before the year began (nothing to run it over), or for a gap rule with no trusted reading."""
    if snapshot.latest_day is None or (without and last_data is None):
        return None
    if spec.key in GAP_MEASURES and not readings:
        return None  # no recorded history yet: a year of "never fired" would say nothing
    gap, pegap = gaps
    try:
        seen = preview(
            spec, snapshot.closes, snapshot.latest_day, gap=gap, pegap=pegap, adjusted=snapshot.adjusted
        )
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
