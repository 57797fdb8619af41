"""The composition root: builds the PTB Application with its handlers, jobs and long-lived services."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from alerts.delivery import Limits, Pacer
from bot import commands, jobs
from bot.core import registry
from bot.telegram import add_fallbacks, menu

if TYPE_CHECKING:
    from bot.config import Config
    from bot.services import Services

log = logging.getLogger(__name__)


async def _post_init(application: Application) -> None:  # type: ignore[type-arg]
    services: Services = application.bot_data["services"]
    # Answer the first command from a current cache: fetch what is missing (a failure leaves what is cached
    # and the refresh job retries).
    await asyncio.to_thread(services.market.ensure_loaded)
    await application.bot.set_my_commands(menu(registry()))


async def _post_shutdown(application: Application) -> None:  # type: ignore[type-arg]
    services: Services = application.bot_data["services"]
    services.close()


def build_app(config: Config, services: Services, *, schedule: bool = True) -> Application:  # type: ignore[type-arg]
    token = config.require_token().reveal()
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{config.api_root}/bot")
        .base_file_url(f"{config.api_root}/file/bot")
        .concurrent_updates(True)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    if config.rate_limit:
        # Telegram's limits: ~30 messages/s overall, 20/minute per group. Retries on RetryAfter are left
        # to the alert delivery, which knows which outbox row failed.
        builder = builder.rate_limiter(
            AIORateLimiter(overall_max_rate=config.rate_limit, group_max_rate=20, max_retries=0)
        )
    application = builder.build()
    application.bot_data["services"] = services

    # Handler order matters: PTB stops at the first matching handler in a group.
    for family in commands.ALL_FAMILIES:  # each family's commands and buttons
        family.register(application)
    add_fallbacks(application)  # unknown commands and stray text last

    application.bot_data["pacer"] = Pacer(Limits(per_second=config.rate_limit or 1e9))
    if schedule:
        jobs.schedule_jobs(application, services, config.poll_seconds)
    return application
