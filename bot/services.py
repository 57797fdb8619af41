"""The long-lived parts every command needs, built once in ``build_app`` (or by the CLI) and shared."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from alerts.store import AlertStore
from bot.core import AnswerCache
from database.connection import open_database
from market.cache import MarketCache
from market.csv_source import CsvSource
from market.service import MarketService

if TYPE_CHECKING:
    from bot.config import Config
    from market.model import MarketSource

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    market: MarketService
    alerts: AlertStore
    admins: frozenset[int] = field(default_factory=frozenset)
    answers: AnswerCache = field(default_factory=AnswerCache)

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.market.clock

    def now(self) -> datetime:
        return self.market.now()

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    def close(self) -> None:
        try:
            self.alerts.rules.checkpoint()  # the rules' last judged values, kept in memory between checkpoints
        except sqlite3.ProgrammingError:
            # The connection is already closed: nothing can be written, and losing the judged values is
            # harmless (judging them again decides the same; see Rules.decisions in alerts/store/rules.py).
            log.warning("database already closed at shutdown: the rules' last judged values were not saved")
        close_source = getattr(self.market.source, "close", None)
        if close_source is not None:
            close_source()
        self.market.cache.db.close()


def market_source(config: Config, as_of: date | None = None) -> MarketSource:
    """The source ``CAPGAP_MARKET`` names."""
    if config.csv_dir is not None:
        source = CsvSource(config.csv_dir, as_of=as_of)
        source.check()  # a history file with no usable row stops the start, in one line
        return source
    if as_of is not None:
        raise ValueError("--as-of needs CAPGAP_MARKET=csv:DIR (Yahoo only serves the present)")
    # Here, not at the top: only the live source needs yfinance (and curl_cffi), which the CSV history,
    # the replays and the tests never load.
    from market.yahoo import YahooSource

    return YahooSource()


def replayed_clock(source: MarketSource) -> Callable[[], datetime]:
    """Time as if the process had started at the settled close ``source`` speaks for, then running on:
    retries and schedules move forward while the market stays at that date."""
    start = getattr(source, "now")()  # noqa: B009 - only offline sources have now()
    started = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - started)


def build_services(
    config: Config,
    *,
    source: MarketSource | None = None,
    as_of: date | None = None,
    clock: Callable[[], datetime] | None = None,
    db_path: Path | str | None = None,
) -> Services:
    source = source or market_source(config, as_of)
    if clock is None and as_of is not None:
        clock = replayed_clock(source)

    db = open_database(db_path if db_path is not None else config.db_path)
    market = MarketService(source, MarketCache(db), clock=clock or (lambda: datetime.now(UTC)), as_of=as_of)
    return Services(config=config, market=market, alerts=AlertStore(db), admins=config.admins)
