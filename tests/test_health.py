"""bot/health.py: /healthz's verdicts at chosen moments of the real calendar, and the endpoint over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.health import BACKLOG_MAX_AGE, HealthServer, check
from bot.services import Services
from testing.world import TEST_TOKEN, make_config
from tests.conftest import FakeClock


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def refreshed(services: Services, moment: datetime, ok: bool = True, detail: str = "") -> None:
    services.market.cache.record_refresh("prices", moment, ok, "Yahoo Finance", detail)


def test_healthy_after_the_close_with_the_close_cached(csv_services: Services, clock: FakeClock) -> None:
    health = check(csv_services, clock())  # 18 Jan 2024, 21:30 UTC; the cache holds that day's close
    assert health.status_code == 200 and health.problems == ()
    assert health.body["status"] == "ok" and health.body["live"] and health.body["ready"]
    assert health.body["market"]["latest_close"] == "2024-01-18"
    assert health.body["market"]["sessions_behind"] == 0
    assert health.body["outbox"] == {"pending": 0, "oldest_pending_age_seconds": None}


def test_trading_hours_need_a_recent_successful_refresh(csv_services: Services) -> None:
    """Friday 19 Jan 2024 opens at 14:30 UTC; the poll interval is 300 s, so the limit is 15 minutes."""
    opening = at("2024-01-19 14:40")  # ten minutes in, no refresh yet today: still within the limit
    assert check(csv_services, opening).healthy
    refreshed(csv_services, at("2024-01-19 14:55"))
    assert check(csv_services, at("2024-01-19 15:05")).healthy
    late = check(csv_services, at("2024-01-19 15:30"))
    assert late.status_code == 503
    assert late.problems == (
        "market data: no successful refresh for 35 min during trading hours (limit 15 min)",
    )
    refreshed(csv_services, at("2024-01-19 15:29"), ok=False, detail="Yahoo did not answer (timeout)")
    assert (
        check(csv_services, at("2024-01-19 15:30")).body["market"]["last_error"]
        == "Yahoo did not answer (timeout)"
    )


def test_a_missing_close_is_unhealthy_two_hours_after_it_was_due(csv_services: Services) -> None:
    """19 Jan 2024 closes 21:00 UTC, its close is due 21:20; the cache still ends on 18 Jan."""
    assert check(csv_services, at("2024-01-19 22:00")).healthy  # the close job is retrying
    late = check(csv_services, at("2024-01-19 23:30"))
    assert late.problems == ("market data: the 2024-01-19 close is missing (latest close 2024-01-18)",)
    assert late.body["market"]["sessions_behind"] == 1


def test_a_message_waiting_too_long_in_the_outbox_is_unhealthy(
    csv_services: Services, clock: FakeClock
) -> None:
    now = clock()
    csv_services.alerts.outbox.queue(1001, "recent", "alert", now - timedelta(minutes=5))
    assert check(csv_services, now).healthy
    csv_services.alerts.outbox.queue(1002, "stuck", "alert", now - BACKLOG_MAX_AGE - timedelta(minutes=1))
    csv_services.alerts.outbox.retry_later(2, now + timedelta(minutes=5), "Forbidden: bot was kicked")
    health = check(csv_services, now)
    assert health.problems == ("outbox: a message has waited 16 min (limit 15 min)",)
    assert health.body["outbox"] == {"pending": 2, "oldest_pending_age_seconds": 960}
    assert health.body["delivery"] == {
        "last_error": "Forbidden: bot was kicked",
        "last_error_row_status": "pending",
    }


def test_not_ready_and_a_dead_database_are_unhealthy(csv_services: Services, clock: FakeClock) -> None:
    assert check(csv_services, clock(), ready=False).status_code == 503
    csv_services.alerts.db.conn.close()
    dead = check(csv_services, clock())
    assert dead.status_code == 503 and not dead.ready and dead.problems[0].startswith("database:")


async def test_the_endpoint_answers_json_200_then_503_and_never_shows_the_token(
    csv_services: Services, clock: FakeClock
) -> None:
    server = HealthServer(
        csv_services, "127.0.0.1", 0, ready=lambda: True, mode="webhook", secrets=[TEST_TOKEN]
    )
    await server.start()
    url = f"http://127.0.0.1:{server.port}/healthz"
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(url) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "application/json"
                body = json.loads(await response.text())
            assert body["status"] == "ok" and body["mode"] == "webhook" and body["uptime_seconds"] >= 0

            csv_services.alerts.outbox.queue(1001, "stuck", "alert", clock() - timedelta(hours=1))
            csv_services.alerts.outbox.retry_later(
                1, clock(), f"could not reach https://example.org/bot{TEST_TOKEN}/send"
            )
            async with client.get(url) as response:
                assert response.status == 503
                text = await response.text()
            assert TEST_TOKEN not in text and "bot***/send" in text
            assert json.loads(text)["status"] == "unhealthy"

            async with client.get(url.replace("/healthz", "/")) as response:
                assert response.status == 404
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("settings", "port"),
    [
        ({}, None),  # polling: off unless asked
        ({"health_port": 0}, 0),
        ({"webhook_url": "https://bot.example.org/hook"}, 8081),  # webhook: on by default
        ({"webhook_url": "https://bot.example.org/hook", "health_port": "off"}, None),
    ],
)
def test_the_endpoint_is_off_in_polling_mode_unless_asked(
    csv_services: Services, tmp_path: Path, settings: dict[str, object], port: int | None
) -> None:
    from bot.app import build_app

    application = build_app(
        make_config(tmp_path, csv_services.config.market, **settings), csv_services, schedule=False
    )
    health = application.bot_data.health
    assert (None if health is None else health.port) == port
