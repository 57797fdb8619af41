"""Scheduled work on PTB's JobQueue (APScheduler): keeping the market cache fresh."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from market import calendar

if TYPE_CHECKING:
    from telegram.ext import Application, ContextTypes

    from bot.services import Services

log = logging.getLogger(__name__)

FUNDS_EVERY = timedelta(hours=20)
# APScheduler's default grace of 1 s silently drops a run that starts late (a busy loop, a suspended VM).
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}


def needs_price_refresh(services: Services) -> bool:
    """During regular hours every tick refreshes; outside them only until the latest close is cached."""
    now = services.now()
    return calendar.is_regular_hours(now) or not services.market.is_fresh()


def needs_funds_refresh(services: Services) -> bool:
    from datetime import datetime

    last = services.market.cache.last_refresh("funds", ok=True)
    return last is None or services.now() - datetime.fromisoformat(str(last["at"])) >= FUNDS_EVERY


async def refresh_prices(context: ContextTypes.DEFAULT_TYPE) -> None:
    services: Services = context.application.bot_data["services"]
    if not needs_price_refresh(services):
        return
    result = await asyncio.to_thread(services.market.refresh_prices)
    log.info("price refresh: %s", result.detail)
    after = context.application.bot_data.get("after_price_refresh")
    if after is not None and result.ok:
        await after(context)


async def refresh_funds(context: ContextTypes.DEFAULT_TYPE) -> None:
    services: Services = context.application.bot_data["services"]
    if not needs_funds_refresh(services):
        return
    result = await asyncio.to_thread(services.market.refresh_funds)
    log.info("fund refresh: %s", result.detail)


def schedule_market_jobs(application: Application, poll_seconds: int) -> None:  # type: ignore[type-arg]
    queue = application.job_queue
    assert queue is not None, "python-telegram-bot[job-queue] is required"
    queue.run_repeating(refresh_prices, interval=poll_seconds, first=0, name="refresh-prices",
                        job_kwargs=JOB_DEFAULTS)
    queue.run_repeating(refresh_funds, interval=3600, first=5, name="refresh-funds", job_kwargs=JOB_DEFAULTS)
