"""Benchmark 1: judging every rule on each market refresh, against a per-rule Python loop.

The rules are ``bench.population``'s (every kind, fifteen keys, realistic state) in a real SQLite file,
loaded by a new ``AlertStore`` as at start-up. Each refresh is what the scheduler runs during the session:
``alerts.engine.run_refresh`` on the snapshot with live quotes five minutes on (observe, ``evaluate``, the
alert messages, and ``AlertStore.commit`` writing the changed states and the outbox rows in one
transaction). The baseline is ``testing.alerts_oracle.oracle_evaluate``, the same semantics as a plain loop
over one rule at a time, on the same rules and observations; its answer is checked against the
vectorised one on every step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alerts.engine import observe, run_refresh
from alerts.evaluate import KIND_NAMES, MODE_NAMES, STATUS_NAMES, evaluate, session_date
from alerts.store import AlertStore
from bench.population import COMBINED, KEYS, RECIPE, populate
from bench.report import Result, Row, Scale, median, ms, peak_mb, percentile, reset_peak, times
from bench.world import close_moment, csv_services, fresh_db
from market.model import Quote
from testing.alerts_oracle import (
    fired_from_frame,
    oracle_evaluate,
    same_changes,
    same_records,
    state_from_frame,
)

NAME = "evaluation"
NAME_10M = "evaluation-10m"  # its own run: populating and loading ten million rules takes minutes
SESSION_START = datetime(2024, 1, 19, 15, 0, tzinfo=UTC)  # 10:00 in New York, the session after AS_OF
STEP = timedelta(minutes=5)  # CAPGAP_POLL_SECONDS' default
STEP_SIGMA = 0.0015  # a 5-minute move of the indices: about 1.3% a day
FULL_CHECK_UP_TO = 100_000  # up to this size every step runs the loop over every rule
LOOP_STEPS_LARGE = 3  # larger sizes run the whole loop on this many steps (seconds each, at 1M)
SAMPLE = 50_000  # ...and check every other step on this many rules (each judged on its own)


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float


class Clock:
    """Wall and CPU time of a block: ``with Clock() as timed: ...`` then ``timed.took``."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.took = Timed(time.perf_counter() - self._wall, time.process_time() - self._cpu)


def oracle_rules(rules: pd.DataFrame) -> list[dict[str, Any]]:
    """The rules frame as the loop baseline's rule dicts (plain Python values, names, dates)."""
    records = rules.reset_index().to_dict("records")
    for rule in records:
        rule["key"] = str(rule["key"])
        rule["kind"] = KIND_NAMES[rule["kind"]]
        rule["mode"] = MODE_NAMES[rule["mode"]]
        rule["status"] = STATUS_NAMES[rule["status"]]
        for flag in ("once", "paused", "armed"):
            rule[flag] = bool(rule[flag])
        expires = rule["expires_at"]
        rule["expires_at"] = None if pd.isna(expires) else expires.to_pydatetime().replace(tzinfo=UTC)
        rule["last_fired_session"] = session_date(rule["last_fired_session"])
        rule["last_session"] = session_date(rule["last_session"])
    return records


def _quotes(closes: pd.DataFrame, factor: float, noise: np.ndarray, now: datetime) -> dict[str, Quote]:
    quotes = {}
    for symbol, jitter in zip(closes.columns, noise, strict=True):
        last = float(closes[symbol].dropna().iloc[-1])
        quotes[str(symbol)] = Quote(str(symbol), last * factor * (1 + jitter), now, last)
    return quotes


def run(workdir: Path, scale: Scale) -> Result:
    sizes: list[int] = scale.pick([3_000], [10_000, 100_000, 1_000_000])  # type: ignore[assignment]
    result = Result()
    for size in sizes:
        _one_size(workdir, scale, size, result)
    result.notes.append(
        f"Evaluation: live refreshes every {STEP.seconds // 60} minutes from 10:00 New York on 2024-01-19, "
        f"the indices moving {STEP_SIGMA:.2%} (σ) a step; the first refresh of each size is a warm-up and "
        "is left out. Median is wall time, CPU the process time of the same calls. The loop baseline is "
        "`testing/alerts_oracle.py`, measured at every size: on every step up to "
        f"{FULL_CHECK_UP_TO // 1000}k rules, on {LOOP_STEPS_LARGE} steps after the timed ones above; its "
        "fired alerts and changed states are checked against the vectorised pass on each of those steps, "
        f"and on the other steps of a large size for {SAMPLE // 1000}k rules drawn at random (a rule is "
        'judged on its own). "vs baseline" of the refresh row is (loop + the same messages and commit) '
        "÷ the real refresh, in CPU time. " + mix()
    )
    return result


def mix() -> str:
    """The rule population's kinds and shares, in words, for the notes."""
    shares = [share for *_, share, _ in RECIPE]
    newer = sum(share for key, *_rest, share, _live in RECIPE if ":ma" in key or key in ("RATIO:z", COMBINED))
    return (
        f"The rules: {len(RECIPE)} kinds over {len(KEYS)} keys (`bench/population.py`), "
        f"{newer / sum(shares):.0%} of them on moving averages (`rut cross ma200`, `spx above ma200`), the "
        "golden cross (`rut ma50 cross ma200`), the ratio's z-score (`ratio z below …`) and a combined "
        "condition (`rut above ma200 and ratio below 0.41`)."
    )


def run_10m(workdir: Path, scale: Scale) -> Result:
    size: int = scale.pick(30_000, 10_000_000)  # type: ignore[assignment]
    result = Result()
    _one_size(workdir, scale, size, result, loop=False)
    result.notes.append(
        f"Evaluation at {size:,} rules: as above, without the whole loop (its rule dicts alone would not "
        f"fit in memory); every step is checked against the loop on {SAMPLE // 1000}k rules drawn at random."
    )
    return result


def _check(
    frame: pd.DataFrame, seen: dict[str, Any], now: datetime, evaluation: Any, rows: np.ndarray | None
) -> float:
    """Check ``evaluation`` of ``frame`` against the loop on ``rows`` (positions; None: all of them);
    returns the loop's CPU seconds."""
    subset = frame if rows is None else frame.iloc[rows]
    rules = oracle_rules(subset)
    with Clock() as clock:
        changed, alerts = oracle_evaluate(rules, seen, now)
    state, fired = evaluation.state, evaluation.fired
    if rows is not None:
        ids = subset.index
        state = state[state.index.isin(ids)]
        fired = fired[fired["rule_id"].isin(ids)]
    if not same_changes(changed, state_from_frame(state)) or not same_records(
        alerts, fired_from_frame(fired)
    ):
        raise AssertionError("the vectorised evaluation and the loop disagree")
    return clock.took.cpu


def _one_size(workdir: Path, scale: Scale, size: int, result: Result, *, loop: bool = True) -> None:
    services = csv_services(fresh_db(workdir, f"evaluation-{size}"))
    snapshot = services.market.snapshot
    created = close_moment()
    observed, _ = observe(snapshot, created, set(KEYS))
    current = {key: observed[key].value if key in observed else 40.0 for key in KEYS}
    high = {s: float(snapshot.closes[s].max()) for s in ("^RUT", "^GSPC")}
    population = populate(services.alerts, size, current, all_time_high=high, created=created)

    reset_peak()
    with Clock() as loading:
        store = AlertStore(services.alerts.db)  # what `capgap run` does at start (no snapshot yet)
    load_peak = peak_mb()

    full = size <= FULL_CHECK_UP_TO
    timed_steps: int = scale.pick(3, 10 if size <= 100_000 else 12 if size <= 1_000_000 else 6)  # type: ignore[assignment]
    loop_steps = 0 if full or not loop else int(scale.pick(1, LOOP_STEPS_LARGE))  # type: ignore[call-overload]
    rng = np.random.default_rng(size)
    level = 1.0
    evaluations: list[Timed] = []
    refreshes: list[Timed] = []
    loops: list[float] = []
    fired: list[int] = []
    peak = 0.0
    reset_peak()
    for step in range(1 + timed_steps + loop_steps):
        now = SESSION_START + STEP * step
        level *= float(np.exp(rng.normal(0.0, STEP_SIGMA)))
        noise = rng.normal(0.0, STEP_SIGMA / 3, len(snapshot.closes.columns))
        live = replace(snapshot, quotes=_quotes(snapshot.closes, level, noise, now))
        seen, _ = observe(live, now, store.rules.watched_keys())
        timed = 0 < step <= timed_steps
        if step == timed_steps + 1:
            peak = peak_mb()  # the loop's rule dicts are not the refresh's memory

        frame = store.rules.frame  # what run_refresh evaluates
        with Clock() as evaluating:
            evaluation = evaluate(frame, seen, now)
        if step > 0 and (full or not timed):
            loops.append(_check(frame, seen, now, evaluation, None))
        elif step > 0:
            _check(
                frame, seen, now, evaluation, np.sort(rng.choice(len(frame), min(SAMPLE, len(frame)), False))
            )
        del evaluation

        with Clock() as refreshing:
            outcome = run_refresh(store, live, now)
        if timed:
            evaluations.append(evaluating.took)
            refreshes.append(refreshing.took)
            fired.append(outcome.fired)
    peak = peak or peak_mb()
    services.close()

    label = f"{population.rows:,} rule rows, {population.chats:,} chats"
    is_target = size >= 1_000_000
    result.rows.append(
        Row(
            NAME,
            "rules loaded from SQLite (`AlertStore`, at start, no snapshot)",
            label,
            ms(loading.took.wall),
            "—",
            load_peak,
            "—",
            cpu=ms(loading.took.cpu),
        )
    )
    eval_cpu = median([t.cpu for t in evaluations])
    loop_cpu = median(loops) if loops else None
    if loop_cpu is not None:
        how = f"{times(loop_cpu / eval_cpu)} faster than the loop ({ms(loop_cpu)} CPU, measured)"
    else:
        how = "— (the loop is not run at this size)"
    result.rows.append(
        Row(
            NAME,
            "evaluate(): the vectorised pass alone",
            label,
            ms(median([t.wall for t in evaluations])),
            ms(percentile([t.wall for t in evaluations], 0.99)),
            None,
            how,
            cpu=ms(eval_cpu),
        )
    )
    refresh_cpu = median([t.cpu for t in refreshes])
    refresh_p99 = percentile([t.wall for t in refreshes], 0.99)
    if loop_cpu is not None:
        io = median([r.cpu - e.cpu for r, e in zip(refreshes, evaluations, strict=True)])
        refresh_ratio: float | None = (loop_cpu + io) / refresh_cpu
        ratio = f"{times(refresh_ratio)} faster"
    else:
        refresh_ratio, ratio = None, "—"
    if size >= 10_000_000:
        target, met = "≤ 1.5 s, peak ≤ 3 GB", median([t.wall for t in refreshes]) <= 1.5 and peak <= 3072
    elif is_target:
        target = "≤ 80 ms CPU, ≤ 250 ms p99, ≥ 30× the loop"
        met = refresh_cpu <= 0.08 and refresh_p99 <= 0.25 and (refresh_ratio or 0) >= 30
    else:
        target, met = "—", None
    result.rows.append(
        Row(
            NAME,
            "refresh: run_refresh (observe, evaluate, messages, commit states + outbox)",
            f"{label}; {median(fired):,.0f} alerts/refresh",
            ms(median([t.wall for t in refreshes])),
            ms(refresh_p99),
            peak,
            ratio,
            target,
            met,
            cpu=ms(refresh_cpu),
        )
    )
