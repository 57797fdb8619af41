"""One refresh of the alerts: observe, evaluate every rule in one pass, queue the messages, commit.

``run_refresh`` is what the scheduler calls after each market refresh and at the close; ``capgap replay``
and the ``/alert`` preview step the same ``alerts.evaluate.evaluate`` over history (``alerts.replay``).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pandas as pd

from alerts.evaluate import evaluate
from alerts.messages import alert_text, limit_text, plain_alert_text
from alerts.observations import (
    GAP_KEY,
    GAP_MAX_AGE,
    GAP_MEASURES,
    PEGAP_KEY,
    Observation,
    clause_keys,
    close_time,
    derived_series,
    key_parts,
    live_observations,
    observations_at,
)
from alerts.replay import without_data
from alerts.store import DEFAULT_ZONE, AlertStore, day_bounds
from market import calendar, valuation

if TYPE_CHECKING:
    from market.cache import MarketSnapshot

log = logging.getLogger(__name__)

DAILY_ALERT_LIMIT = 20  # alert messages per chat per (local) day; then one notice, then silence


@dataclass(frozen=True)
class RefreshOutcome:
    observed: int  # observations judged
    fired: int  # rule rows that fired
    queued: int  # messages queued
    mode: str  # "live", "close" or "none"


def gap_series(funds: pd.DataFrame, key: str = GAP_KEY) -> pd.Series | None:
    """What gap rules on ``key`` (GAP: P/B, PEGAP: P/E) are judged on: the two-pair reading (a fraction) on
    every snapshot date of ``funds`` (``MarketSnapshot.funds``), NaN where the twins contradict it, so a
    contradicted reading is judged by nobody and the trusted one before it is not carried past it. None
    when no pair was ever read."""
    history = valuation.readings(funds, GAP_MEASURES[key])
    if not history:
        return None
    dates = pd.DatetimeIndex([pd.Timestamp(reading.as_of) for reading in history])
    return valuation.trusted_series(history).reindex(dates)


def observe(snapshot: MarketSnapshot, now: datetime, keys: set[str]) -> tuple[dict[str, Observation], str]:
    """The observations a refresh at ``now`` judges: live quotes during regular hours, else the latest close.

    A close that is not the one the NYSE calendar says should be latest is marked stale: it is judged by
    nobody, so a bot that starts with an old cache never fires on old prices.
    """
    if not keys or snapshot.closes.empty:
        return {}, "none"
    session = calendar.current_session(now)
    if session is not None:
        quotes = {s: q for s, q in snapshot.quotes.items() if s in snapshot.closes.columns}
        observed = live_observations(
            snapshot.closes,
            quotes,
            session,
            keys=keys,
            now=now,
            previous_session=calendar.previous_session(session),
        )
        mode = "live"
    else:
        # Only the last rows matter, but windows reach back ten years and highs to the start.
        series = derived_series(
            snapshot.closes, sorted(keys - GAP_MEASURES.keys()), adjusted=snapshot.adjusted
        )
        latest = series.index[-1]
        # The latest close that has happened, settled or not: in the minutes after the bell the cache still
        # ends at yesterday, and yesterday's close must not be judged after today's live prices were.
        fresh = latest.date() >= calendar.last_closed_session(now, settle=timedelta(0))
        observed = {
            k: Observation(o.key, o.value, o.time, o.session, True, not fresh)
            for k, o in observations_at(series, latest).items()
        }
        mode = "close"
    for key in sorted(keys & GAP_MEASURES.keys()):
        gap = gap_series(snapshot.funds, key)
        if gap is None:
            continue
        # The newest reading, and only it: once per snapshot (its date is the session a close rule judges
        # once), never when it is old, never when its twins contradict it (NaN, so stale) — the trusted
        # reading before it was judged when it was new, and must not be judged again in its place.
        as_of = gap.index[-1].date()
        value = float(gap.iloc[-1]) * 100
        # A snapshot dated on a weekend is stamped at that day's 16:00, so that it too grows old.
        moment = calendar.session_close(as_of) if calendar.is_session(as_of) else close_time(as_of)
        stale = now - moment > GAP_MAX_AGE or not math.isfinite(value)
        observed[key] = Observation(key, value, moment, as_of, True, stale)
    return observed, mode


def run_refresh(store: AlertStore, snapshot: MarketSnapshot, now: datetime) -> RefreshOutcome:
    """Judge every active rule on the current snapshot; queue and commit what fired, atomically.

    The store's lock is held from reading the rules to the commit, so a /delete or /pause cannot slip in
    between and be overwritten by states judged before it.
    """
    with store.lock:
        return _run_refresh(store, snapshot, now)


def _run_refresh(store: AlertStore, snapshot: MarketSnapshot, now: datetime) -> RefreshOutcome:
    rules = store.rules.frame  # finished rules too, until the next checkpoint: evaluation skips them
    keys = store.rules.watched_keys()
    observed, mode = observe(snapshot, now, keys | _context_keys(keys))
    if not observed:
        return RefreshOutcome(0, 0, 0, mode)
    store.observations.record(o for o in observed.values() if o.key in keys)
    evaluation = evaluate(rules, observed, now)
    fired = evaluation.fired
    messages: list[tuple[int, str, str]] = []
    if len(fired):
        specs = store.rules.specs(int(i) for i in fired["rule_id"])
        contexts: dict[Any, str] = {}  # what every chat's message shares (alerts.messages.alert_text)
        by_chat: dict[int, list[dict[str, Any]]] = defaultdict(list)
        names = [str(c) for c in fired.columns]
        # Column by column into plain Python values (what ``to_dict("records")`` gives, a cell at a time).
        for row in zip(*(fired[c].tolist() for c in fired.columns), strict=True):
            hit = dict(zip(names, row, strict=True))
            hit["spec"] = specs.get(int(hit["rule_id"]), "")
            by_chat[int(hit["chat_id"])].append(hit)
        # Each chat's zone and its alerts already queued today, a query per zone rather than two per chat:
        # a refresh can fire for thousands of chats.
        zones = store.chats.zones(list(by_chat))
        chats_in: dict[str, list[int]] = defaultdict(list)
        for chat_id in by_chat:
            chats_in[zones.get(chat_id, DEFAULT_ZONE)].append(chat_id)
        days = {zone: day_bounds(_local_day(now, zone), zone) for zone in chats_in}
        queued_today: dict[int, int] = {}
        for zone, members in chats_in.items():
            queued_today.update(store.outbox.alerts_queued_between(members, *days[zone]))
        for chat_id, hits in by_chat.items():
            start, end = days[zones.get(chat_id, DEFAULT_ZONE)]
            if queued_today.get(chat_id, 0) < DAILY_ALERT_LIMIT:
                try:
                    texts = alert_text(hits, snapshot, observed, source=snapshot.source, contexts=contexts)
                except Exception:  # one chat's message must not cost every other chat its alerts
                    log.exception("alert message for chat %s could not be built; sending it plain", chat_id)
                    texts = plain_alert_text(hits)
                messages.extend((chat_id, text, "alert") for text in texts)
            elif not store.outbox.limit_notice_queued_on(chat_id, start, end):
                messages.append((chat_id, limit_text(DAILY_ALERT_LIMIT), "limit"))
            else:
                log.info("chat %s is over its daily alert limit; %d alert(s) not sent", chat_id, len(hits))
    store.commit(evaluation, messages, now)
    return RefreshOutcome(len(observed), len(fired), len(messages), mode)


def _context_keys(keys: set[str]) -> set[str]:
    """The values alert messages need besides the rules' own keys: a move, drawdown or moving-average
    alert's context (distance from the high, the ETF equivalent, the average) is built from its symbol's
    price, which no rule may watch; a combined alert's from its conditions' values."""
    prices: set[str] = set(clause_keys(keys))  # a combined alert shows each of its conditions
    for key in keys:
        parts = key_parts(key)
        if parts.measure in ("move", "drawdown", "average") and parts.symbol is not None:
            prices.add(parts.symbol)
    return prices


def _local_day(now: datetime, zone: str) -> date:
    return now.astimezone(ZoneInfo(zone)).date()


def current_observation(snapshot: MarketSnapshot, now: datetime, key: str) -> Observation | None:
    """The value a new rule on ``key`` is created against (live during the session, else the last close)."""
    observed, _ = observe(snapshot, now, {key})
    found = observed.get(key)
    if found is None or found.stale or not math.isfinite(found.value):
        return None
    return found


def keys_without_data(snapshot: MarketSnapshot, keys: Sequence[str]) -> dict[str, date | None]:
    """The keys among ``keys`` no rule can be judged on with ``snapshot``, each with the date of its last
    value (None when it never had one); keys with recent data are left out. See ``alerts.replay.without_data``.
    """
    return without_data(
        keys,
        snapshot.closes,
        snapshot.latest_day,
        gap=gap_series(snapshot.funds, GAP_KEY),
        pegap=gap_series(snapshot.funds, PEGAP_KEY),
        adjusted=snapshot.adjusted,
    )


def expiry_note(expires_after: timedelta | None) -> str:
    return "" if expires_after is None else f", for {expires_after.days} days"
