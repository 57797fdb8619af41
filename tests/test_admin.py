"""/stats (bot/commands/admin.py) and admin-only commands: invisible to everyone but CAPGAP_ADMINS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from bot.commands import registry
from bot.handlers import menu
from tests.conftest import DirectBot

ADMIN = 4242
USER = 1001


@pytest.fixture
async def bot(direct_bot_factory: Callable[..., Awaitable[DirectBot]]) -> DirectBot:
    return await direct_bot_factory(admins=frozenset({ADMIN}))


def reply_params(calls: list) -> dict:  # type: ignore[type-arg]
    (call,) = [c for c in calls if c.method == "sendMessage"]
    return {k: v for k, v in call.params.items() if k != "chat_id"}


async def test_a_non_admin_gets_exactly_the_unknown_command_reply(bot: DirectBot) -> None:
    """A user who guesses /stats learns nothing: same text, markup and options as a command that is not there."""
    to_stats = reply_params(await bot.message(USER, "/stats"))
    to_nothing = reply_params(await bot.message(USER, "/statz"))
    assert to_stats == {**to_nothing, "text": to_nothing["text"].replace("/statz", "/stats")}
    assert to_stats["text"] == "I don't know /stats. Did you mean /start? Send /help to see what I can do."
    in_group = reply_params(
        await bot.message(-100999, "/stats@capgap_test_bot", chat_type="supergroup", user_id=USER)
    )
    assert in_group == to_stats


async def test_stats_is_hidden_from_help_and_the_menu_but_not_from_an_admin(bot: DirectBot) -> None:
    assert "/stats" not in reply_params(await bot.message(USER, "/help"))["text"]
    assert "/stats" in reply_params(await bot.message(ADMIN, "/help"))["text"]
    assert "stats" not in {c["command"] for c in bot.emulator.commands}
    assert "stats" not in {c.command for c in menu(registry())}


async def test_stats_counts_chats_rules_sent_alerts_and_the_backlog(bot: DirectBot) -> None:
    await bot.message(USER, "/alert rut cross 2000")
    await bot.message(USER, "/alert spx above 5000")
    await bot.message(USER + 1, "/alert gap shift 3")
    await bot.message(USER + 1, "/pause")
    store, now = bot.services.alerts, bot.services.now()
    store.outbox.queue(USER, "sent one", "alert", now - timedelta(minutes=30))
    (row,) = store.outbox.pending(now)
    store.outbox.mark_sent(row.id, now)
    store.outbox.queue(USER, "waiting", "alert", now - timedelta(minutes=3))
    store.outbox.retry_later(store.outbox.pending(now)[0].id, now, "Timed out")

    text = reply_params(await bot.message(ADMIN, "/stats"))["text"]
    assert "Chats: 2 active of 2" in text
    assert "Alerts: 3 set (1 paused) in 2 chats" in text
    assert "Alerts sent today (UTC): 1" in text
    assert "Outbox: 1 pending, oldest 3 min ago" in text
    assert "Data: latest close 2024-01-18 (up to date)" in text
    assert "Source: ok" in text
    assert "Last delivery error: Timed out (pending)" in text
    assert "Health: ok" in text
