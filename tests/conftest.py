"""Shared fixtures: the real history, a market service on it, and the local protocol peers."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlite_utils
from hypothesis import HealthCheck, settings

from alerts.store import AlertStore
from bot.services import Services, build_services
from database.connection import open_database
from market.cache import MarketCache
from market.csv_source import CsvSource
from testing.telegram import TelegramEmulator, telegram_emulator_fixture  # noqa: F401 - the fixture
from testing.world import AS_OF, SHARED_DATA, TEST_TOKEN, build_history_db, make_config, start_bot, stop_bot

# PTB 22 hands out RetryAfter.retry_after as a timedelta under this flag and warns without it; the bot
# sets it at start too (bot/cli.py), so tests see what production sees.
os.environ.setdefault("PTB_TIMEDELTA", "true")

# Property tests must not depend on the machine's speed: a shared 2-core box under load ran one example in
# 546 ms against hypothesis' default 200 ms deadline. Under CI hypothesis' own "ci" profile (derandomised, no
# example database) is the base; HYPOTHESIS_PROFILE picks another registered profile.
settings.register_profile(
    "capgap",
    parent=settings.get_profile("ci" if os.environ.get("CI") else "default"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "capgap"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "RUT_daily.csv").is_file():
        pytest.fail(f"the shared market history is missing: expected {SHARED_DATA}/RUT_daily.csv")
    return SHARED_DATA


class FakeClock:
    """A clock tests move by hand: nothing here ever sleeps on the wall clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


def after_close(day: date) -> datetime:
    """Half an hour after ``day``'s official close: its close is settled and in the cache."""
    from market import calendar

    return calendar.session_close(day) + timedelta(minutes=30)


def advance_market(services: Services, clock: FakeClock, day: date) -> None:
    """The market moves on to ``day``'s close: the source knows it, the clock is past it, the cache has it."""
    services.market.source = CsvSource(SHARED_DATA, as_of=day)
    clock.now = after_close(day)
    assert services.market.refresh_prices().ok
    # Asked of the cache, not of ``services.market.snapshot``: reading the snapshot here would build it
    # before a test stores the day's fund facts.
    assert max(services.market.cache.latest_days().values()) == day


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 1, 18, 21, 30, tzinfo=UTC))


# --- one SQLite database and what lives in it ------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The file of ``db``; not ``capgap.db``, which the services fixtures use in the same ``tmp_path``."""
    return tmp_path / "t.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[sqlite_utils.Database]:
    """A real SQLite database (WAL), opened as the bot opens its own."""
    database = open_database(db_path)
    yield database
    database.close()


@pytest.fixture
def store(db: sqlite_utils.Database) -> AlertStore:
    """The alert store (rules, chats, observations, outbox) on ``db``."""
    return AlertStore(db)


@pytest.fixture
def cache(db: sqlite_utils.Database) -> MarketCache:
    """The market cache on ``db``."""
    return MarketCache(db)


@pytest.fixture(scope="session")
def history_db(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A cache filled once from the CSV history as at AS_OF; tests get their own copy of the file."""
    return build_history_db(tmp_path_factory.mktemp("history") / "capgap.db", shared_data)


@pytest.fixture
def csv_services(tmp_path: Path, shared_data: Path, history_db: Path, clock: FakeClock) -> Iterator[Services]:
    """Services on the real CSV history as at the 2024-01-18 close, cache in a real SQLite file."""
    config = make_config(tmp_path, f"csv:{shared_data}")
    shutil.copyfile(history_db, config.db_path)
    services = build_services(config, source=CsvSource(shared_data, as_of=AS_OF), clock=clock)
    yield services
    services.close()


class RunningBot:
    """The real PTB Application, long-polling the emulator: tests post updates and wait on its calls."""

    def __init__(self, application: object, emulator: TelegramEmulator, services: Services) -> None:
        self.application = application
        self.emulator = emulator
        self.services = services

    async def ask(self, chat_id: int, text: str, **kwargs: object) -> object:
        """Send ``text`` as a user and return the bot's first reply call to that chat."""
        self.emulator.user_message(chat_id, text, **kwargs)
        (call,) = await self.emulator.wait_for(chat_id=chat_id)
        return call


@pytest_asyncio.fixture
async def running_bot(
    telegram_emulator: TelegramEmulator, csv_services: Services, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    from bot.app import build_app

    config = make_config(tmp_path, csv_services.config.market, api_root=telegram_emulator.root)
    application = build_app(config, csv_services, schedule=False)
    await start_bot(application)
    await telegram_emulator.wait_for(method="setMyCommands")
    yield RunningBot(application, telegram_emulator, csv_services)
    await stop_bot(application)


class DirectBot:
    """The real PTB Application, started but not polling: each update goes through ``process_update``,
    which returns only when every handler is done with it. So a test knows the bot has finished with an
    update, and can say that it sent nothing, without waiting on the clock. Replies still travel over
    HTTP to the emulator.
    """

    def __init__(self, application: Any, emulator: TelegramEmulator, services: Services) -> None:
        self.application = application
        self.emulator = emulator
        self.services = services

    async def process(self, update: dict[str, Any], chat_id: int) -> list[Any]:
        """Handle ``update``; returns the Bot API calls it made to ``chat_id``."""
        from telegram import Update

        before = len(self.emulator.calls_to(chat_id))
        await self.application.process_update(Update.de_json(update, self.application.bot))
        return self.emulator.calls_to(chat_id)[before:]

    async def message(self, chat_id: int, text: str, **kwargs: Any) -> list[Any]:
        return await self.process(self.emulator.user_message(chat_id, text, **kwargs), chat_id)

    async def replies(self, chat_id: int, text: str, **kwargs: Any) -> list[str]:
        """The texts the bot sent to ``chat_id`` in answer to ``text``."""
        calls = await self.message(chat_id, text, **kwargs)
        return [
            c.params.get("text") or c.params.get("caption") or ""
            for c in calls
            if c.method.startswith("send")
        ]

    async def press(self, chat_id: int, message_id: int, data: str, **kwargs: Any) -> tuple[str, list[Any]]:
        """Press a button; returns the callback query id and the calls made to the chat."""
        before = len(self.emulator.calls_to(chat_id))
        query_id = self.emulator.press_button(chat_id, message_id, data, **kwargs)
        update = next(
            u for u in self.emulator.pending_updates if u.get("callback_query", {}).get("id") == query_id
        )
        from telegram import Update

        await self.application.process_update(Update.de_json(update, self.application.bot))
        return query_id, self.emulator.calls_to(chat_id)[before:]


@pytest_asyncio.fixture
async def direct_bot_factory(
    telegram_emulator: TelegramEmulator, csv_services: Services, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[DirectBot]]]:
    """``await direct_bot_factory(**config settings)``: a DirectBot on the real history, on that config."""
    from bot.app import build_app

    started: list[Any] = []

    async def make(**overrides: Any) -> DirectBot:
        config = make_config(
            tmp_path, csv_services.config.market, api_root=telegram_emulator.root, **overrides
        )
        csv_services.config = config
        csv_services.admins = config.admins
        application = build_app(config, csv_services, schedule=False)
        await application.initialize()
        await application.post_init(application)
        await application.start()
        started.append(application)
        return DirectBot(application, telegram_emulator, csv_services)

    yield make
    for application in started:
        await application.stop()
        health = application.bot_data.health
        if health is not None:  # post_shutdown's part, without closing the fixture's services
            await health.stop()
        await application.shutdown()


@pytest_asyncio.fixture
async def direct_bot(direct_bot_factory: Callable[..., Awaitable[DirectBot]]) -> DirectBot:
    return await direct_bot_factory()


@pytest.fixture(autouse=True)
def token_never_logged(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every end-to-end test (one with the Bot API emulator) runs under capgap's own logging set-up at DEBUG,
    and afterwards the token must be absent from all it logged: no record may even carry it (libraries that
    would log it are held back), and the redaction filter is the second line of defence.
    """
    if "telegram_emulator" not in request.fixturenames:
        yield
        return
    from bot.logs import QUIET_LOGGERS, RedactSecrets, setup_logging

    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in [*QUIET_LOGGERS, ""]}
    buffer = io.StringIO()
    carried: list[str] = []

    class Witness(logging.Filter):
        """First filter of every handler, so it sees each record as the library made it, unredacted."""

        def filter(self, record: logging.LogRecord) -> bool:
            text = record.getMessage() + (record.exc_text or "")
            if TEST_TOKEN in text or TEST_TOKEN.split(":")[1] in text:
                carried.append(f"{record.name}: {text[:200]}")
            return True

    handler = setup_logging("DEBUG", [TEST_TOKEN], stream=buffer)
    witness = Witness()
    for each in root.handlers:
        each.filters.insert(0, witness)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for each in root.handlers:
            for added in [f for f in each.filters if isinstance(f, RedactSecrets) or f is witness]:
                each.removeFilter(added)
        for name, level in levels.items():
            logging.getLogger(name or None).setLevel(level)
    logged = buffer.getvalue()
    assert not carried, "log records carried the bot token:\n" + "\n".join(carried)
    assert TEST_TOKEN not in logged and TEST_TOKEN.split(":")[1] not in logged


# --- the bot as a real process (capgap run) -------------------------------------------------------------


def bot_env(emu: TelegramEmulator, db: Path, as_of: str = "2024-01-18") -> dict[str, str]:
    """The environment of a ``capgap run`` on the replayed market as at ``as_of``'s close."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPGAP_")}
    env.update(
        CAPGAP_TELEGRAM_TOKEN=TEST_TOKEN,
        CAPGAP_TELEGRAM_API=emu.root,
        CAPGAP_MARKET=f"csv:{SHARED_DATA}",
        CAPGAP_AS_OF=as_of,
        CAPGAP_DB=str(db),
        CAPGAP_LOG_LEVEL="INFO",
    )
    return env


@asynccontextmanager
async def bot_process(
    emu: TelegramEmulator, db: Path, as_of: str = "2024-01-18"
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A running ``capgap run``; killed with SIGKILL on exit unless the test already stopped it."""
    with (db.parent / f"bot-{as_of}.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            env=bot_env(emu, db, as_of),
            cwd=db.parent,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    try:
        await emu.wait_for(method="setMyCommands", timeout=30)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
