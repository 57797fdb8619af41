"""Scheduled work on PTB's JobQueue (APScheduler): market refreshes, the close, alert delivery, digests.

Jobs are not persisted by the JobQueue; everything they act on lives in SQLite, so rebuilding them at start
(``schedule_jobs``) loses nothing. Every job reads time from the injected clock (``services.now``).
No job touches SQLite on the event loop: a refresh holds the store's lock for its whole pass, and a job
waiting for it there would stall every command and button press meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from alerts.delivery import drain
from alerts.engine import run_refresh
from bot.commands.standing import standing_digest
from bot.schedule import FUNDS_CHECK, FUNDS_EVERY
from bot.transport import transport
from market import calendar

if TYPE_CHECKING:
    from bot.context import App, Context
    from bot.services import Services

log = logging.getLogger(__name__)

DRAIN_SECONDS = 2.0
# APScheduler's default grace of 1 s silently drops a run that starts late (a busy loop, a suspended VM).
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}


def needs_price_refresh(services: Services) -> bool:
    """During regular hours every tick refreshes; outside them only until the latest close is cached."""
    return calendar.is_regular_hours(services.now()) or not services.market.is_fresh()


def needs_funds_refresh(services: Services) -> bool:
    last = services.market.cache.last_refresh("funds", ok=True)
    return last is None or services.now() - datetime.fromisoformat(str(last["at"])) >= FUNDS_EVERY


async def evaluate_alerts(context: Context) -> None:
    """Judge every rule on the current snapshot, then send what that queued."""
    data = context.application.bot_data
    services = data.services
    # Jobs overlap (a refresh, the close, the fund facts): two passes over the same states would both
    # see a rule armed and fire it twice, so passes take turns.
    async with data.evaluation_lock:
        outcome = await asyncio.to_thread(
            run_refresh, services.alerts, services.market.snapshot, services.now()
        )
    if outcome.fired:
        log.info(
            "alerts: %d rule(s) fired, %d message(s) queued (%s)", outcome.fired, outcome.queued, outcome.mode
        )
    # Sent by a task of its own: a long drain (thousands of messages at 30/s) must not hold this job
    # past its next run, which APScheduler would then skip.
    context.application.create_task(deliver(context), name="deliver")


async def refresh_prices(context: Context) -> None:
    services = context.application.bot_data.services
    if not await asyncio.to_thread(needs_price_refresh, services):
        return
    result = await asyncio.to_thread(services.market.refresh_prices)
    log.info("price refresh: %s", result.detail)
    if result.ok:
        await evaluate_alerts(context)


async def at_close(context: Context) -> None:
    """After the official close (half days included): fetch the close, judge close rules, book the next."""
    services = context.application.bot_data.services
    try:
        result = await asyncio.to_thread(services.market.refresh_prices)
        log.info("close refresh: %s", result.detail)
        await evaluate_alerts(context)
        await asyncio.to_thread(services.alerts.rules.checkpoint)
    finally:
        schedule_close(context.application, services)


async def refresh_funds(context: Context) -> None:
    services = context.application.bot_data.services
    if not await asyncio.to_thread(needs_funds_refresh, services):
        return
    result = await asyncio.to_thread(services.market.refresh_funds)
    log.info("fund refresh: %s", result.detail)
    if result.ok:
        await evaluate_alerts(context)  # gap rules judge each new snapshot


async def deliver(context: Context) -> None:
    data = context.application.bot_data
    services = data.services
    if data.delivery_lock.locked():  # a drain is under way; it picks up what is due
        return
    async with data.delivery_lock:
        report = await drain(services.alerts, transport(context.bot), services.now, data.pacer)
    if report.sent or report.retried or report.blocked or report.failed or report.moved:
        log.info("delivery: %s", report)


async def digests(context: Context) -> None:
    """Queue the daily digest of every chat whose local digest time has passed and that has not had today's."""
    services = context.application.bot_data.services
    now = services.now()
    due = await asyncio.to_thread(services.alerts.chats.digests_due, now)
    if not due:
        return
    text = await asyncio.to_thread(standing_digest, services)

    def queue_all() -> None:  # each waits for the store's lock, which a refresh may hold
        for chat, day in due:
            services.alerts.queue_digest(chat.chat_id, day, text, now)

    await asyncio.to_thread(queue_all)
    # Sent by a task of its own: a long drain (thousands of messages at 30/s) must not hold this job
    # past its next run, which APScheduler would then skip.
    context.application.create_task(deliver(context), name="deliver")


async def end_snoozes(context: Context) -> None:
    """Resume the alerts of every chat whose snooze (``/pause 3d``) is over, and tell it. The snooze's end
    is kept in SQLite, so one that fell due while the bot was down ends at the first run after a start."""
    services = context.application.bot_data.services
    woken = await asyncio.to_thread(services.alerts.wake_snoozed, services.now())
    for snooze, resumed in woken:
        log.info(
            "chat %s: snooze over, %d alert(s) resumed",
            snooze.chat_id,
            resumed,
            extra={"chat_id": snooze.chat_id},
        )
    if woken:
        context.application.create_task(deliver(context), name="deliver")


def schedule_close(application: App, services: Services) -> None:
    queue = application.job_queue
    assert queue is not None
    now = services.now()
    # Relative, so a clock that speaks for another moment (a replayed market) still schedules correctly.
    # Counted from before the settle window, so a start in the minutes after the bell still books today's.
    wait = calendar.next_close(now - calendar.CLOSE_SETTLE) + calendar.CLOSE_SETTLE - now
    queue.run_once(at_close, when=wait, name="close", job_kwargs=JOB_DEFAULTS)


def schedule_jobs(application: App, services: Services, poll_seconds: int) -> None:
    queue = application.job_queue
    assert queue is not None, "python-telegram-bot[job-queue] is required"
    # post_init has just brought the cache up to date: judge the rules on it now, refresh on the beat.
    queue.run_once(evaluate_alerts, when=0, name="evaluate-at-start", job_kwargs=JOB_DEFAULTS)
    queue.run_repeating(
        refresh_prices,
        interval=poll_seconds,
        first=poll_seconds,
        name="refresh-prices",
        job_kwargs=JOB_DEFAULTS,
    )
    queue.run_repeating(
        refresh_funds, interval=FUNDS_CHECK, first=5, name="refresh-funds", job_kwargs=JOB_DEFAULTS
    )
    queue.run_repeating(deliver, interval=DRAIN_SECONDS, first=1, name="deliver", job_kwargs=JOB_DEFAULTS)
    queue.run_repeating(
        digests, interval=60, first=60 - services.now().second, name="digests", job_kwargs=JOB_DEFAULTS
    )
    # Snoozes end within a minute of their time (the first run, at start, ends those due while it was down).
    queue.run_repeating(end_snoozes, interval=60, first=1, name="snoozes", job_kwargs=JOB_DEFAULTS)
    schedule_close(application, services)
