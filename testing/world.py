"""The offline world tests and benchmarks share: the real market history, the bot's test token and
config, the warm history cache built from it, and starting and stopping a PTB Application on the emulator
as ``run_polling`` would."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Final

from bot.config import Config, Secret
from bot.services import build_services
from market.csv_source import CsvSource
from testing.telegram import TEST_TOKEN

__all__ = [
    "AS_OF",
    "SHARED_DATA",
    "TEST_TOKEN",
    "build_history_db",
    "make_config",
    "start_bot",
    "stop_bot",
]

# The real market history (``<SYMBOL>_daily.csv`` files and ``funds.csv``, see its SOURCES.md), kept beside
# the checkout rather than in it.
SHARED_DATA: Final = Path(__file__).resolve().parents[2] / "shared" / "data"
# The close the tests' world stands at.
AS_OF: Final = date(2024, 1, 18)


def make_config(tmp_path: Path, market: str, **overrides: object) -> Config:
    """The bot's config for a test or a benchmark: the test token, a database in ``tmp_path``, no rate limit."""
    settings: dict[str, object] = {
        "token": Secret(TEST_TOKEN),
        "db_path": tmp_path / "capgap.db",
        "market": market,
        "rate_limit": 0,
    }
    settings.update(overrides)
    return Config(**settings)  # type: ignore[arg-type]


def build_history_db(path: Path, data: Path = SHARED_DATA) -> Path:
    """Fill a new cache at ``path`` from the CSV history in ``data`` as at AS_OF, checkpointed into one
    file so copies of it are whole."""
    source = CsvSource(data, as_of=AS_OF)
    services = build_services(
        make_config(path.parent, f"csv:{data}", db_path=path), source=source, clock=source.now
    )
    services.market.ensure_loaded()
    services.market.cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    services.close()
    return path


async def start_bot(application: Any) -> None:
    """What ``run_polling`` does before it blocks: initialise, run post_init, poll, start."""
    await application.initialize()
    await application.post_init(application)
    await application.updater.start_polling(poll_interval=0, timeout=5)
    await application.start()


async def stop_bot(application: Any) -> None:
    await application.updater.stop()
    await application.stop()
    await application.shutdown()
