"""Webhook mode end to end: PTB's webhook server registered with the emulator, updates posted to it with
and without the secret token, the switch back to polling, and `capgap run --webhook` as a real process
with JSON logs and /healthz.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import aiohttp

from bot.app import ALLOWED_UPDATES, build_app, webhook_options, webhook_secret
from bot.services import Services
from tests.conftest import DATA, TEST_TOKEN, make_config, start_bot, stop_bot
from tests.telegram_emulator import TelegramEmulator

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
    telegram_emulator: TelegramEmulator, csv_services: Services, tmp_path: Path
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
    secret = webhook_secret(config)
    application = build_app(config, csv_services, schedule=False)
    await application.initialize()
    await application.post_init(application)
    await application.updater.start_webhook(**webhook_options(config, secret))
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
    finally:
        await application.updater.stop()
        await application.stop()
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
        CAPGAP_MARKET=f"csv:{DATA}",
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
