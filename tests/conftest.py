"""Shared fixtures: the real history, a market service on it, and the local protocol peers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.config import Config, Secret
from bot.services import Services, build_services
from market.csv_source import CsvSource

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Clearly fake, and not shaped like a real token (digits, colon, 35 characters).
TEST_TOKEN = "12345:capgap-test-token-not-a-real-one"
AS_OF = date(2024, 1, 18)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (DATA / "RUT_daily.csv").is_file():
        pytest.fail(f"the shared market history is missing: expected {DATA}/RUT_daily.csv")
    return DATA


class FakeClock:
    """A clock tests move by hand: nothing here ever sleeps on the wall clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 1, 18, 21, 30, tzinfo=UTC))


def make_config(tmp_path: Path, market: str, **overrides: object) -> Config:
    settings: dict[str, object] = {
        "token": Secret(TEST_TOKEN),
        "db_path": tmp_path / "capgap.db",
        "market": market,
        "rate_limit": 0,
    }
    settings.update(overrides)
    return Config(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def history_db(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A cache filled once from the CSV history as at AS_OF; tests get their own copy of the file."""
    path = tmp_path_factory.mktemp("history") / "capgap.db"
    source = CsvSource(shared_data, as_of=AS_OF)
    services = build_services(make_config(path.parent, f"csv:{shared_data}", db_path=path), source=source,
                              clock=source.now)
    services.market.ensure_loaded()
    services.market.cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    services.close()
    return path


@pytest.fixture
def csv_services(tmp_path: Path, shared_data: Path, history_db: Path, clock: FakeClock) -> Iterator[Services]:
    """Services on the real CSV history as at the 2024-01-18 close, cache in a real SQLite file."""
    config = make_config(tmp_path, f"csv:{shared_data}")
    shutil.copyfile(history_db, config.db_path)
    services = build_services(config, source=CsvSource(shared_data, as_of=AS_OF), clock=clock)
    yield services
    services.close()
