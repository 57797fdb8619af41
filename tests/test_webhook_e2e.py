"""Webhook mode end to end: capgap's webhook server registered with the emulator, updates posted to it
with and without the secret token, the switch back to polling, `capgap run --webhook` as a real process
with JSON logs and /healthz, and requests refused on their headers before their body is read.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest_asyncio
from _pytest.logging import LogCaptureFixture

from bot.app import ALLOWED_UPDATES, build_app, webhook_options, webhook_secret
from bot.services import Services
from testing.telegram import TelegramEmulator
from testing.world import SHARED_DATA, TEST_TOKEN, make_config, start_bot, stop_bot

CHAT = 3003
INTRUDER = 6666


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stored_rows(db: Path, chat_id: int) -> int:
    with sqlite3.connect(db) as conn:
        return sum(
            conn.execute(f"SELECT COUNT(*) FROM {table} WHERE chat_id = ?", [chat_id]).fetchone()[0]
            for table in ("chats", "rules", "outbox")
        )


async def test_only_updates_with_the_secret_get_in_and_polling_removes_the_webhook(
    telegram_emulator: TelegramEmulator, csv_services: Services, tmp_path: Path, caplog: LogCaptureFixture
) -> None:
    emu = telegram_emulator
    port = free_port()
    config = make_config(
        tmp_path,
        csv_services.config.market,
        api_root=emu.root,
        webhook_url=f"http://127.0.0.1:{port}/capgap/hook",
        webhook_port=port,
    )
    from bot.webhook import Hook, WebhookServer, register

    secret = webhook_secret(config)
    application = build_app(config, csv_services, schedule=False)
    await application.initialize()
    await application.post_init(application)
    hook = Hook(**webhook_options(config, secret))
    server = WebhookServer(application, hook)
    await server.start()
    await register(application, hook, retries=0)
    await application.start()
    try:
        hook = emu.webhook
        assert (hook.url, hook.secret_token, hook.allowed_updates) == (
            config.webhook_url,
            secret,
            tuple(ALLOWED_UPDATES),
        )
        assert len(secret) >= 32  # random, since CAPGAP_WEBHOOK_SECRET is unset

        forged = emu.user_message(INTRUDER, "/alert rut above 3000")
        assert await emu.deliver_to_webhook(forged, secret_token=None) == 403
        assert await emu.deliver_to_webhook(forged, secret_token="guessed-secret-0123456789") == 403
        assert await emu.deliver_to_webhook(forged, secret_token=secret[:-1]) == 403

        assert await emu.deliver_to_webhook(emu.user_message(CHAT, "/alert rut above 3000")) == 200
        (reply,) = await emu.wait_for(chat_id=CHAT, method="sendMessage")
        assert "Alert <b>#1</b> set" in reply.params["text"]
        # The rejected update was refused before it was parsed: no reply, nothing stored.
        assert emu.calls_to(INTRUDER) == []
        assert stored_rows(csv_services.config.db_path, INTRUDER) == 0
        assert stored_rows(csv_services.config.db_path, CHAT) == 2  # the chat and its rule

        # An update that cannot be read is refused and described, never quoted.
        unreadable = {"update_id": 9, "message": {"text": "my secret plan"}}
        assert await emu.deliver_to_webhook(unreadable) == 400
        assert "my secret plan" not in caplog.text
        size = len(json.dumps(unreadable))
        described = f"cannot be read ({size} bytes, a JSON object with fields message, update_id)"
        assert described in caplog.text
    finally:
        await server.stop()
        await application.stop()
        health = application.bot_data.health
        if health is not None:  # post_shutdown's part, without closing the fixture's services
            await health.stop()
        await application.shutdown()

    # Back to polling: PTB deletes the webhook before its first getUpdates.
    polling = build_app(
        make_config(tmp_path, csv_services.config.market, api_root=emu.root), csv_services, schedule=False
    )
    await start_bot(polling)
    try:
        await emu.wait_for(method="deleteWebhook")
        assert emu.webhook.url == ""
        emu.user_message(CHAT, "/alerts")
        (listing,) = await emu.wait_for(chat_id=CHAT, method="sendMessage")
        assert "#1</b>" in listing.params["text"]
    finally:
        await stop_bot(polling)


async def wait_until_ready(url: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a deadline
    """Poll /healthz until it says ready: what a load balancer or a container runtime does.

    setWebhook is called just before PTB's server starts listening, and the application counts as
    running only once it listens, so "ready" means updates can be posted.
    """
    async with aiohttp.ClientSession() as client, asyncio.timeout(timeout):
        while True:
            try:
                async with client.get(url) as response:
                    if (await response.json(content_type=None)).get("ready"):
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)


def bot_environment(emu: TelegramEmulator, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPGAP_")}
    env.update(
        CAPGAP_TELEGRAM_TOKEN=TEST_TOKEN,
        CAPGAP_TELEGRAM_API=emu.root,
        CAPGAP_MARKET=f"csv:{SHARED_DATA}",
        CAPGAP_AS_OF="2024-01-18",
        CAPGAP_DB=str(tmp_path / "capgap.db"),
        CAPGAP_LOG_LEVEL="DEBUG",
        CAPGAP_LOG_FORMAT="json",
        **settings,
    )
    return env


async def test_capgap_run_with_a_webhook_serves_updates_health_and_json_logs(
    telegram_emulator: TelegramEmulator, tmp_path: Path
) -> None:
    emu = telegram_emulator
    port, health_port = free_port(), free_port()
    env = bot_environment(
        emu, tmp_path, CAPGAP_WEBHOOK_PORT=str(port), CAPGAP_HEALTH_PORT=str(health_port), CAPGAP_ADMINS="77"
    )
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", "--webhook", f"http://127.0.0.1:{port}/hook",
            env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        (registered,) = await emu.wait_for(method="setWebhook", timeout=30)
        secret = registered.params["secret_token"]
        await wait_until_ready(f"http://127.0.0.1:{health_port}/healthz")

        rejected = emu.user_message(INTRUDER, "/start")
        assert await emu.deliver_to_webhook(rejected, secret_token=None) == 403
        assert await emu.deliver_to_webhook(emu.user_message(CHAT, "/alert rut above 3141 once")) == 200
        (answer,) = await emu.wait_for(chat_id=CHAT, method="sendMessage", timeout=30)
        assert "Alert <b>#1</b> set: <b>RUT above 3,141" in answer.params["text"]

        health_env = {**env, "CAPGAP_LISTEN": "0.0.0.0"}  # as in the container: asks 127.0.0.1
        checker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "healthcheck", env=health_env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(checker.communicate(), 30)
        assert checker.returncode == 0, err
        report = json.loads(out)
        assert (report["status"], report["mode"], report["ready"]) == ("ok", "webhook", True)
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{health_port}/healthz") as got,
        ):
            assert got.status == 200

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert emu.calls_to(INTRUDER) == []
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert {"chat_id": CHAT, "command": "alert"}.items() <= next(x for x in lines if x.get("command")).items()
    text = log_path.read_text()
    for never in (TEST_TOKEN, TEST_TOKEN.split(":")[1], secret, "rut above", "3141"):  # nor what users wrote
        assert never not in text, never


async def post_head(port: int, headers: dict[str, str], body: bytes = b"") -> int:
    """POST /hook with ``headers`` and only ``body`` of what they announce; the status of the answer.

    An answer that waits for the rest of the body never comes: the deadline fails the test.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}\r\n".encode() + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 20)
        return int(status_line.split()[1])
    finally:
        writer.close()


@dataclass
class WebhookBot:
    port: int
    secret: str
    log_path: Path
    process: asyncio.subprocess.Process

    async def stop(self) -> list[dict[str, object]]:
        """SIGTERM, a clean exit, and the JSON lines it logged."""
        self.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.process.wait(), 30) == 0
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


@pytest_asyncio.fixture
async def webhook_bot(telegram_emulator: TelegramEmulator, tmp_path: Path) -> AsyncIterator[WebhookBot]:
    """`capgap run --webhook` as a real process, registered with the emulator and ready."""
    emu = telegram_emulator
    port, health_port = free_port(), free_port()
    env = bot_environment(emu, tmp_path, CAPGAP_WEBHOOK_PORT=str(port), CAPGAP_HEALTH_PORT=str(health_port))
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", "--webhook", f"http://127.0.0.1:{port}/hook",
            env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        (registered,) = await emu.wait_for(method="setWebhook", timeout=30)
        await wait_until_ready(f"http://127.0.0.1:{health_port}/healthz")
        yield WebhookBot(port, registered.params["secret_token"], log_path, process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_huge_body_is_refused_on_its_headers_before_it_is_read(
    webhook_bot: WebhookBot, telegram_emulator: TelegramEmulator
) -> None:
    """99 MB announced, none sent: the answer comes at once (a server reading the body first would wait
    for it, and hold it in memory): 403 without the right secret, 413 with it."""
    huge = {"Content-Type": "application/json", "Content-Length": str(99 * 1024 * 1024)}
    port, secret = webhook_bot.port, webhook_bot.secret
    assert await post_head(port, {**huge, "X-Telegram-Bot-Api-Secret-Token": "guessed-secret"}) == 403
    assert await post_head(port, huge) == 403
    assert await post_head(port, {**huge, "X-Telegram-Bot-Api-Secret-Token": secret}, b"{") == 413
    # Still serving: a good update gets its answer.
    emu = telegram_emulator
    assert await emu.deliver_to_webhook(emu.user_message(CHAT, "/start")) == 200
    await emu.wait_for(chat_id=CHAT, method="sendMessage", timeout=30)
    await webhook_bot.stop()


async def test_an_unreadable_update_is_logged_by_size_and_kind_not_by_what_the_user_wrote(
    webhook_bot: WebhookBot,
) -> None:
    unreadable = json.dumps({"update_id": 5, "message": {"text": "my secret plan 4321"}}).encode()
    genuine = {
        "Content-Type": "application/json",
        "Content-Length": str(len(unreadable)),
        "X-Telegram-Bot-Api-Secret-Token": webhook_bot.secret,
    }
    assert await post_head(webhook_bot.port, genuine, unreadable) == 400
    lines = await webhook_bot.stop()

    text = webhook_bot.log_path.read_text()
    assert "my secret plan" not in text and "4321" not in text
    (refused,) = [line for line in lines if "cannot be read" in str(line["message"])]
    assert refused["level"] == "WARNING"
    message = str(refused["message"])
    assert f"{len(unreadable)} bytes" in message and "fields message, update_id" in message
    assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]
