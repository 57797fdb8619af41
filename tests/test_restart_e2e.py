"""The bot as a real process: an alert survives `kill -9` between evaluation and delivery, exactly once.

Each step runs ``capgap run`` (python -m bot.cli run) against the Bot API emulator on a replayed market
(``CAPGAP_MARKET=csv:…`` with ``CAPGAP_AS_OF``): restarting at a later date is how the market advances.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

from testing.telegram import TelegramEmulator
from testing.world import TEST_TOKEN
from tests.conftest import bot_process

CHAT = 4242


def outbox(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, text FROM outbox ORDER BY id").fetchall()


async def test_alert_is_delivered_once_across_kill_9_between_evaluation_and_delivery(
    telegram_emulator: TelegramEmulator, tmp_path: Path
) -> None:
    emu = telegram_emulator
    db = tmp_path / "capgap.db"

    # 1. On the 18 Jan 2024 close (RUT 1,923.65) the user sets an alert.
    async with bot_process(emu, db, "2024-01-18") as first:
        emu.user_message(CHAT, "/alert rut above 1950 close")
        (reply,) = await emu.wait_for(chat_id=CHAT, method="sendMessage", timeout=30)
        assert "Alert <b>#1</b> set" in reply.params["text"]
        assert "Now: 1,923.65" in reply.params["text"]
        first.kill()  # kill -9: no goodbye
        await first.wait()

    # 2. The market moves on to 22 Jan (RUT 1,983.38): the rule fires and its message is queued, but the bot
    #    dies while Telegram has not yet answered the send.
    emu.hold("sendMessage", chat_id=CHAT)
    async with bot_process(emu, db, "2024-01-22") as second:
        await emu.wait_held(1, timeout=30)
        second.kill()
        await second.wait()
    emu.release()
    assert [status for status, _ in outbox(db)] == ["pending"]

    # 3. After the restart the pending alert goes out, once; the rule is not judged again on that close.
    async with bot_process(emu, db, "2024-01-22") as third:
        (alert,) = await emu.wait_for(chat_id=CHAT, method="sendMessage", timeout=30)
        text = alert.params["text"]
        assert "RUT above 1,950" in text and "1,983.38" in text and "/delete 1" in text
        emu.user_message(CHAT, "/alerts")
        (listing,) = await emu.wait_for(chat_id=CHAT, method="sendMessage", timeout=30)
        assert "#1</b>" in listing.params["text"] and "waiting to re-arm" in listing.params["text"]
        emu.user_message(CHAT, "/delete 1")
        (deleted,) = await emu.wait_for(chat_id=CHAT, method="sendMessage", timeout=30)
        assert "Deleted #1: RUT above 1,950" in deleted.params["text"]
        third.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(third.wait(), 30) == 0

    alerts_sent = [
        c for c in emu.calls_to(CHAT) if c.method == "sendMessage" and c.ok and "🔔" in c.params["text"]
    ]
    assert len(alerts_sent) == 1
    assert [status for status, _ in outbox(db)] == ["sent"]
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("bot-*.log"))
    assert "Application started" in logs  # the processes did log, at INFO
    assert TEST_TOKEN not in logs and TEST_TOKEN.split(":")[1] not in logs
