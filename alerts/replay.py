"""Rules run over history: what ``capgap replay`` prints, what the ``/alert`` preview counts, and which
rules history cannot judge (``without_data``).

Each step is one trading date's closes fed to ``alerts.evaluate.evaluate`` — the code the scheduler runs —
so a replay cannot disagree with what the bot would have sent at the close.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from alerts.evaluate import advance, evaluate, rule_rows, rules_frame
from alerts.messages import format_value
from alerts.observations import (
    GAP_KEY,
    GAP_MAX_AGE,
    GAP_MEASURES,
    close_observations,
    close_time,
    derived_series,
    key_parts,
    observations_at,
    parse_key,
)
from alerts.rules import RuleSpec


@dataclass(frozen=True)
class FiredAlert:
    """One alert a replay would have sent."""

    session: date
    time: datetime
    rule: str  # the rule's canonical text
    rule_id: int
    key: str
    kind: str  # the row's kind: above, below, move, high, shift
    level: float
    value: float
    previous_value: float

    def line(self) -> str:
        """One line for ``capgap replay``, starting with the ISO date."""
        return f"{self.session.isoformat()}  {self.rule}  ({self.key} {_shown(self.key, self.value)})"


def _shown(key: str, value: float) -> str:
    if key_parts(key).measure in _WORDED:
        return format_value(key, value)
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"


# Measures whose value reads better in words than as a bare number (1.0023 is "+0.23% from its average").
_WORDED = ("average", "averages", "mean", "all", "window")


def replay(
    specs: Sequence[RuleSpec],
    closes: pd.DataFrame,
    start: date,
    end: date,
    *,
    gap: pd.Series | None = None,
    pegap: pd.Series | None = None,
    adjusted: pd.DataFrame | None = None,
    chat_id: int = 0,
) -> list[FiredAlert]:
    """The alerts ``specs`` would have sent at the closes of ``start``..``end`` (inclusive), in order.

    The rules are created as of the last close before ``start`` (their initial state judged on that close),
    then each trading date's close is evaluated in turn. ``gap`` and ``pegap`` are the valuation-gap
    histories on P/B and P/E as fractions (``alerts.engine.gap_series``; see ``derived_series``): a trading
    date takes the newest reading on or before it, so a gap rule is judged on each reading once (the same
    value again on the next dates changes nothing). ValueError when ``closes`` has no date before ``start``.
    """
    index = pd.DatetimeIndex(closes.index)
    history = closes.loc[index <= pd.Timestamp(end)]
    dates = pd.DatetimeIndex(history.index)
    before = dates[dates < pd.Timestamp(start)]
    if len(before) == 0:
        raise ValueError(f"no close before {start.isoformat()} to create the rules on")
    created = before[-1]
    series = derived_series(history, [spec.key for spec in specs], gap, pegap=pegap, adjusted=adjusted)
    created_at = close_time(created.date())
    at_creation = observations_at(series, created)

    rows: list[dict[str, Any]] = []
    texts: dict[int, str] = {}
    for spec in specs:
        high = None
        if spec.kind == "high":
            _, symbol = parse_key(spec.key)
            high = float(history.loc[:created, symbol].max())
        new_rows, _ = rule_rows(
            spec,
            at_creation.get(spec.key, math.nan),
            first_rule_id=len(rows) + 1,
            chat_id=chat_id,
            created_at=created_at,
            all_time_high=high,
        )
        texts.update({int(row["rule_id"]): spec.canonical for row in new_rows})
        rows.extend(new_rows)
    rules = rules_frame(rows)

    alerts: list[FiredAlert] = []
    stepping = series.loc[series.index >= pd.Timestamp(start)]
    keys = list(stepping.columns)
    for day, values in zip(stepping.index, stepping.to_numpy(), strict=True):
        session = day.date()
        evaluation = evaluate(rules, close_observations(keys, values, session), close_time(session))
        rules = advance(rules, evaluation)
        if evaluation.fired.empty:
            continue
        for hit in evaluation.fired.to_dict("records"):
            alerts.append(
                FiredAlert(
                    session=hit["session"].date(),
                    time=hit["time"].to_pydatetime(),
                    rule=texts[int(hit["rule_id"])],
                    rule_id=int(hit["rule_id"]),
                    key=str(hit["key"]),
                    kind=str(hit["kind"]),
                    level=float(hit["level"]),
                    value=float(hit["value"]),
                    previous_value=float(hit["previous_value"]),
                )
            )
    return alerts


@dataclass(frozen=True)
class Preview:
    """How often a rule would have fired over a recent span, for the reply to ``/alert``."""

    start: date
    end: date
    alerts: tuple[FiredAlert, ...]

    @property
    def count(self) -> int:
        return len(self.alerts)

    @property
    def dates(self) -> tuple[date, ...]:
        return tuple(alert.session for alert in self.alerts)


def preview(
    spec: RuleSpec,
    closes: pd.DataFrame,
    end: date,
    *,
    days: int = 365,
    gap: pd.Series | None = None,
    pegap: pd.Series | None = None,
    adjusted: pd.DataFrame | None = None,
) -> Preview:
    """``replay`` of one rule over the ``days`` calendar days ending at ``end`` (inclusive)."""
    start = end - timedelta(days=days - 1)
    fired = replay([spec], closes, start, end, gap=gap, pegap=pegap, adjusted=adjusted)
    return Preview(start, end, tuple(fired))


# A price key whose newest close is more than this older than the newest close of the two indices has
# stopped (a long weekend and a late feed stay under it); the valuation gap is not judged on a snapshot
# older than GAP_MAX_AGE, so that is its limit.
PRICE_DATA_MAX_AGE = timedelta(days=5)


def without_data(
    keys: Sequence[str],
    closes: pd.DataFrame,
    as_of: date | None,
    *,
    gap: pd.Series | None = None,
    pegap: pd.Series | None = None,
    adjusted: pd.DataFrame | None = None,
) -> dict[str, date | None]:
    """The keys among ``keys`` a rule cannot be judged on as of ``as_of`` (the newest close): each with the
    date of its last value, or None when it never had one. Keys with recent data are left out.

    The last value of a valuation gap is the date of its newest trusted reading (``gap`` on P/B, ``pegap``
    on P/E, as fractions);
    a price, move or drawdown key's is its symbol's last close; the ratio's and a lead's need both indices.
    """
    last: dict[str, date | None] = {}
    for key in dict.fromkeys(keys):
        if key in GAP_MEASURES:
            history = gap if key == GAP_KEY else pegap
            known = None if history is None else history[np.isfinite(history.to_numpy(dtype="float64"))]
            last[key] = None if known is None or known.empty else pd.Timestamp(known.index.max()).date()
            continue
        try:
            series = derived_series(closes, [key], adjusted=adjusted)[key]
        except ValueError:  # the closes have no column for the key's symbol
            last[key] = None
            continue
        found = series.last_valid_index()
        last[key] = None if found is None else pd.Timestamp(found).date()  # type: ignore[arg-type]
    if as_of is None:
        return last
    out: dict[str, date | None] = {}
    for key, day in last.items():
        limit = GAP_MAX_AGE if key in GAP_MEASURES else PRICE_DATA_MAX_AGE
        if day is None or as_of - day > limit:
            out[key] = day
    return out
