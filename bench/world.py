"""The offline world the benchmarks run in, built as the tests build it: the real market history in a real
SQLite cache (``testing.world``: ``make_config`` and the CSV source as at the 18 January 2024 close),
copied into a fresh file for each measurement."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.services import Services, build_services
from market.csv_source import CsvSource
from testing.world import AS_OF, SHARED_DATA, build_history_db, make_config

MARKET = f"csv:{SHARED_DATA}"


def history_db(workdir: Path) -> Path:
    """A cache filled once from the CSV history as at AS_OF (made on first use, then reused)."""
    path = workdir / "history" / "capgap.db"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        build_history_db(path)
    return path


def fresh_db(workdir: Path, name: str) -> Path:
    """A copy of the warm history cache in a directory of its own."""
    target = workdir / name / "capgap.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(history_db(workdir), target)
    return target


def csv_services(db: Path, *, wall_clock: bool = False, **config: Any) -> Services:
    """Services on the CSV history as at AS_OF over ``db``, as ``tests/conftest.py`` makes them.

    Their clock speaks for the AS_OF close, unless ``wall_clock``: the real time, as a bot on Yahoo runs
    (the replayed clock asks the exchange calendar for that close on every call)."""
    source = CsvSource(SHARED_DATA, as_of=AS_OF)
    settings = make_config(db.parent, MARKET, db_path=db, **config)
    return build_services(
        settings, source=source, clock=(lambda: datetime.now(UTC)) if wall_clock else source.now
    )


def close_moment() -> datetime:
    """When the rules of the benchmarks were made: after the AS_OF close, as the CSV source speaks."""
    return CsvSource(SHARED_DATA, as_of=AS_OF).now().astimezone(UTC)
