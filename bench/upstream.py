"""Benchmark 2: requests upstream per refresh, whatever the number of rules and chats.

The real ``MarketService`` and ``YahooSource`` (yfinance's own code) talk HTTP to the test suite's Yahoo
replay server (``testing/yahoo/``), which counts every request it receives. A refresh is
``refresh_prices`` followed by ``alerts.engine.run_refresh`` over every stored rule, as the scheduler runs
them.
"""

from __future__ import annotations

import time
from pathlib import Path

from alerts.engine import observe, run_refresh
from alerts.rules import parse_rule
from alerts.store import AlertStore
from bench.population import KEYS, populate
from bench.report import Result, Row, Scale, median, ms, peak_mb, reset_peak
from database.connection import open_database
from market.cache import MarketCache
from market.service import MarketService
from market.yahoo import YahooSource
from testing.yahoo import (
    DEFAULT_DATA_DIR,
    REPLAY_NOW,
    ManualClock,
    ReplaySession,
    YahooReplay,
    isolate_yfinance,
)

NAME = "upstream"


def run(workdir: Path, scale: Scale) -> Result:
    configs: list[tuple[int, int]] = scale.pick(  # type: ignore[assignment]
        [(1, 1), (500, 100)], [(1, 1), (1_000, 1_000), (100_000, 10_000)]
    )
    refreshes: int = scale.pick(2, 3)  # type: ignore[assignment]
    result = Result()
    counts: dict[tuple[int, int], list[int]] = {}
    first_contact: list[int] = []
    for rules, chats in configs:
        folder = workdir / f"upstream-{rules}"
        folder.mkdir(parents=True, exist_ok=True)
        isolate_yfinance(folder / "yfinance-cache")  # each run starts without yfinance's cookie and crumb
        clock = ManualClock(REPLAY_NOW)
        with YahooReplay(DEFAULT_DATA_DIR) as replay:
            session = ReplaySession(replay)
            db = open_database(folder / "capgap.db")
            service = MarketService(YahooSource(session=session, clock=clock), MarketCache(db), clock=clock)
            store = AlertStore(db)
            service.refresh_prices()  # the first contact: the whole history, yfinance's cookie and crumb
            first_contact.append(len(replay.requests))
            _add_rules(store, service, rules, chats)
            store = AlertStore(db)  # loaded from the file, as at start
            reset_peak()
            seconds = []
            counts[(rules, chats)] = []
            for _ in range(refreshes):
                replay.clear_requests()
                started = time.perf_counter()
                service.refresh_prices()
                run_refresh(store, service.snapshot, clock())
                seconds.append(time.perf_counter() - started)
                counts[(rules, chats)].append(len(replay.requests))
            peak = peak_mb()
            session.close()
            db.close()
        isolate_yfinance(folder / "yfinance-cache")
        result.rows.append(
            Row(
                NAME,
                "upstream requests per refresh (refresh_prices + run_refresh)",
                f"{len(store.rules.active):,} rule row(s), {chats:,} chat(s)",
                ms(median(seconds)),
                f"{median(counts[(rules, chats)]):.0f} requests",
                peak,
                "—",
            )
        )
    distinct = {n for per_refresh in counts.values() for n in per_refresh}
    constant = len(distinct) == 1
    last = result.rows[-1]
    result.rows[-1] = Row(**{**last.__dict__, "target": "the same for every size", "met": constant})
    result.notes.append(
        f"Upstream: every refresh cost {', '.join(map(str, sorted(distinct)))} request(s) at every size: one "
        "`yf.download` of every instrument after the close (the seven marked intraday during the session), "
        "which yfinance sends as one chart request per symbol. The first "
        f"contact of a process costs {max(first_contact)} (yfinance's cookie and crumb, and the whole "
        "history) whatever the number of rules. Fund facts (once a day) are a fixed 3–4 requests per ETF."
    )
    return result


def _add_rules(store: AlertStore, service: MarketService, rules: int, chats: int) -> None:
    now = service.now()
    snapshot = service.snapshot
    if rules == 1:
        store.rules.add(1, parse_rule("rut above 3000"), None, now)
        return
    observed, _ = observe(snapshot, now, set(KEYS))
    current = {key: observed[key].value if key in observed else 40.0 for key in KEYS}
    high = {s: float(snapshot.closes[s].max()) for s in ("^RUT", "^GSPC")}
    populate(store, rules, current, all_time_high=high, created=now, chats=chats)
