"""Benchmark 1: judging every rule on each market refresh, against a per-rule Python loop.

The rules are ``bench.population``'s (every kind, ten keys, realistic state) in a real SQLite file,
loaded by a new ``AlertStore`` as at start-up. Each refresh is what the scheduler runs during the session:
``alerts.engine.run_refresh`` on the snapshot with live quotes five minutes on (observe, ``evaluate``, the
alert messages, and ``AlertStore.commit`` writing the changed states and the outbox rows in one
transaction). The baseline is ``testing.alerts_oracle.oracle_evaluate``, the same semantics as a plain loop
over one rule at a time, on the same rules and observations; its answer is checked against the
vectorised one on every step.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alerts.engine import observe, run_refresh
from alerts.evaluate import KIND_NAMES, MODE_NAMES, STATUS_NAMES, evaluate, session_date
from alerts.store import AlertStore
from bench.population import KEYS, populate
from bench.report import Result, Row, Scale, median, ms, peak_mb, percentile, reset_peak, times
from bench.world import close_moment, csv_services, fresh_db
from market.model import Quote
from testing.alerts_oracle import oracle_evaluate

NAME = "evaluation"
SESSION_START = datetime(2024, 1, 19, 15, 0, tzinfo=UTC)  # 10:00 in New York, the session after AS_OF
STEP = timedelta(minutes=5)  # CAPGAP_POLL_SECONDS' default
STEP_SIGMA = 0.0015  # a 5-minute move of the indices: about 1.3% a day
LOOP_MEASURED_UP_TO = 100_000  # larger populations extrapolate the loop linearly from this size


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
    loop_seconds_per_row: float | None = None
    for size in sizes:
        loop_seconds_per_row = _one_size(workdir, scale, size, result, loop_seconds_per_row)
    result.notes.append(
        f"Evaluation: live refreshes every {STEP.seconds // 60} minutes from 10:00 New York on 2024-01-19, "
        f"the indices moving {STEP_SIGMA:.2%} (σ) a step; the first refresh of each size is a warm-up and "
        "is left out. The loop baseline is `testing/alerts_oracle.py`; its fired alerts and changed states "
        'are checked against the vectorised pass on every measured step. "vs baseline" of the refresh '
        "row is (loop + the same messages and commit) ÷ the real refresh."
    )
    return result


def _one_size(
    workdir: Path, scale: Scale, size: int, result: Result, loop_per_row: float | None
) -> float | None:
    services = csv_services(fresh_db(workdir, f"evaluation-{size}"))
    snapshot = services.market.snapshot
    created = close_moment()
    observed, _ = observe(snapshot, created, set(KEYS))
    current = {key: observed[key].value if key in observed else 40.0 for key in KEYS}
    high = {s: float(snapshot.closes[s].max()) for s in ("^RUT", "^GSPC")}
    population = populate(services.alerts, size, current, all_time_high=high, created=created)

    reset_peak()
    started = time.perf_counter()
    store = AlertStore(services.alerts.db)  # what `capgap run` does at start
    load_seconds = time.perf_counter() - started
    load_peak = peak_mb()

    steps: int = scale.pick(3, 10 if size <= 10_000 else 8 if size <= 100_000 else 6)  # type: ignore[assignment]
    rng = np.random.default_rng(size)
    level = 1.0
    vectorised: list[float] = []
    refreshes: list[float] = []
    loops: list[float] = []
    fired: list[int] = []
    reset_peak()
    for step in range(steps):
        now = SESSION_START + STEP * step
        level *= float(np.exp(rng.normal(0.0, STEP_SIGMA)))
        noise = rng.normal(0.0, STEP_SIGMA / 3, len(snapshot.closes.columns))
        live = replace(snapshot, quotes=_quotes(snapshot.closes, level, noise, now))
        keys = set(map(str, store.rules["key"].unique()))
        seen, _ = observe(live, now, keys)

        loop_seconds = None
        if size <= LOOP_MEASURED_UP_TO and step > 0:
            rules = oracle_rules(store.rules)
            started = time.perf_counter()
            changed, alerts = oracle_evaluate(rules, seen, now)
            loop_seconds = time.perf_counter() - started
        started = time.perf_counter()
        evaluation = evaluate(store.rules, seen, now)
        evaluate_seconds = time.perf_counter() - started
        if loop_seconds is not None and (len(alerts), len(changed)) != (
            len(evaluation.fired),
            len(evaluation.state),
        ):
            raise AssertionError("the vectorised evaluation and the loop disagree")

        started = time.perf_counter()
        outcome = run_refresh(store, live, now)
        refresh_seconds = time.perf_counter() - started
        if step == 0:
            continue  # warm-up
        vectorised.append(evaluate_seconds)
        refreshes.append(refresh_seconds)
        fired.append(outcome.fired)
        if loop_seconds is not None:
            loops.append(loop_seconds)
            loop_per_row = median([loop / population.rows for loop in loops])
    peak = peak_mb()
    services.close()

    label = f"{population.rows:,} rule rows, {population.chats:,} chats"
    measured = bool(loops)
    loop_here = median(loops) if measured else (loop_per_row or 0.0) * population.rows
    how = "" if measured else f" (loop extrapolated from {LOOP_MEASURED_UP_TO // 1000}k)"
    eval_ratio = loop_here / median(vectorised)
    io = median([r - v for r, v in zip(refreshes, vectorised, strict=True)])
    refresh_ratio = (loop_here + io) / median(refreshes)
    is_target = size >= 1_000_000
    result.rows.append(
        Row(
            NAME,
            "rules loaded from SQLite (`AlertStore`, at start)",
            label,
            ms(load_seconds),
            "—",
            load_peak,
            "—",
        )
    )
    result.rows.append(
        Row(
            NAME,
            "evaluate(): the vectorised pass alone",
            label,
            ms(median(vectorised)),
            ms(percentile(vectorised, 0.99)),
            None,
            f"{times(eval_ratio)} faster than the loop ({ms(loop_here)}){how}",
        )
    )
    met = median(refreshes) <= 0.25 and refresh_ratio >= 20 if is_target else None
    result.rows.append(
        Row(
            NAME,
            "refresh: run_refresh (observe, evaluate, messages, commit states + outbox)",
            f"{label}; {median(fired):,.0f} alerts/refresh",
            ms(median(refreshes)),
            ms(percentile(refreshes, 0.99)),
            peak,
            f"{times(refresh_ratio)} faster{how}",
            "≤ 250 ms at 1M and ≥ 20× the loop" if is_target else "—",
            met,
        )
    )
    return loop_per_row
