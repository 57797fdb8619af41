"""The composition root: builds the PTB Application with its handlers, jobs and long-lived services,
and runs it, by long polling or behind a webhook."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from telegram import Update
from telegram.ext import ApplicationBuilder

from alerts.delivery import Limits, Pacer
from bot import commands, guard, jobs, webhook
from bot.context import App, BotData, context_types
from bot.handlers import add_chat_moves, add_fallbacks, add_family, add_inline, menu
from bot.health import HealthServer
from bot.limiter import Limiter
from bot.request import AiohttpRequest

if TYPE_CHECKING:
    from bot.config import Config
    from bot.services import Services

log = logging.getLogger(__name__)

# Keep-alive connections for the Bot API calls other than getUpdates: room for a burst of replies and the
# outbox's concurrent sends.
CONNECTION_POOL_SIZE = 64
# What the handlers answer; Telegram sends nothing else, by polling or by webhook.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.INLINE_QUERY]


async def _post_init(application: App) -> None:
    data = application.bot_data
    # Answer the first command from a current cache: fetch what is missing (a failure leaves what is cached
    # and the refresh job retries).
    await asyncio.to_thread(data.services.market.ensure_loaded)
    await application.bot.set_my_commands(menu(commands.registry()))
    if data.health is not None:
        await data.health.start()
    # What start-up made (the modules, the market snapshot, the handlers: over 100,000 objects) lives as
    # long as the bot. Left to the collector, each of its full passes walks all of it, 40-70 ms of one core
    # in the middle of a burst of replies; frozen, the passes walk only what came after. Start-up's own
    # garbage goes first, so none of it is kept; shutdown hands everything back to the collector.
    gc.collect()
    gc.freeze()


async def _post_shutdown(application: App) -> None:
    gc.unfreeze()
    data = application.bot_data
    if data.health is not None:
        await data.health.stop()
    # Off the loop like every store call: closing checkpoints the rules under the store's lock, which a
    # refresh still finishing in its thread may hold.
    await asyncio.to_thread(data.services.close)


def build_app(
    config: Config, services: Services, *, schedule: bool = True, redact: tuple[str, ...] = ()
) -> App:
    """The bot, ready to run. ``redact`` (the webhook secret) is kept out of what /healthz shows, like the
    token."""
    token = config.require_token().reveal()
    data = BotData(
        services=services,
        guard=guard.Guard(config.allowed_chats, config.admins, config.flood_per_minute),
        pacer=Pacer(Limits(per_second=config.rate_limit or 1e9)),
    )
    builder = (
        ApplicationBuilder()
        .token(token)
        .context_types(context_types(data))
        .base_url(f"{config.api_root}/bot")
        .base_file_url(f"{config.api_root}/file/bot")
        .concurrent_updates(True)
        # Bot API calls over aiohttp: a third of the CPU per call of PTB's httpx default (bot/request.py).
        .request(AiohttpRequest(connection_pool_size=CONNECTION_POOL_SIZE))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        # Telegram's limits (~30 messages/s overall, 20/minute per group; CAPGAP_RATE_LIMIT=0 lifts them):
        # a reply told to wait waits and goes out; the outbox handles its own 429s (bot/limiter.py).
        .rate_limiter(Limiter(config.rate_limit, group_per_minute=20 if config.rate_limit else 0))
    )
    application = builder.build()

    # Handler order matters: PTB stops at the first matching handler in a group.
    guard.register(application)  # group -1, before all: allowed chats, flood and length limits
    add_chat_moves(application)  # a group upgraded to a supergroup: its alerts follow the new id
    add_family(application, commands)  # every family's commands and buttons (bot/commands/__init__.py)
    add_inline(application)  # "@bot standing 10y" in any chat: the market commands, answered inline
    add_fallbacks(application)  # unknown commands and stray text last

    health_port = config.health_port_in_effect
    if health_port is not None:

        def ready() -> bool:
            updater = application.updater
            return application.running and (updater is None or updater.running)

        data.health = HealthServer(
            services,
            config.listen,
            health_port,
            ready=ready,
            mode="webhook" if config.webhook_url else "polling",
            secrets=[token, *redact],
        )

    if schedule:
        jobs.schedule_jobs(application, services, config.poll_seconds)
    return application


def webhook_secret(config: Config) -> str:
    """The secret Telegram sends with every update, as the X-Telegram-Bot-Api-Secret-Token header.

    Unset, it is a fresh random one at every start: setWebhook hands it to Telegram each time, so there is
    nothing to configure, nothing to leak from a file, and a restart rotates it. Set it only when something
    in front of capgap (a reverse proxy) must check it too.
    """
    return config.webhook_secret.reveal() if config.webhook_secret else secrets.token_urlsafe(32)


def webhook_options(config: Config, secret: str) -> dict[str, Any]:
    """What the webhook server needs (bot/webhook.py's Hook): it listens on the URL's path, and registers
    the URL and secret."""
    assert config.webhook_url is not None
    return {
        "listen": config.listen,
        "port": config.webhook_port,
        "url_path": urlsplit(config.webhook_url).path,
        "webhook_url": config.webhook_url,
        "secret_token": secret,
        "allowed_updates": ALLOWED_UPDATES,
    }


def serve(application: App, config: Config, secret: str, *, bootstrap_retries: int = 0) -> None:
    """Run until SIGINT/SIGTERM: behind a webhook when one is configured, else by long polling.

    Reaching Telegram at start is tried ``bootstrap_retries`` more times, backing off (PTB's bootstrap
    retries); after that the error is raised. The webhook server is capgap's own (bot/webhook.py): it
    checks the secret token and the size of a request before reading it, which PTB's does not. Starting to
    poll deletes any webhook a previous run registered (PTB calls deleteWebhook first), so going back from
    webhook to polling needs nothing but dropping the setting.
    """
    if config.webhook_url:
        hook = webhook.Hook(**webhook_options(config, secret))
        asyncio.run(webhook.serve(application, hook, bootstrap_retries))
        return
    try:
        application.run_polling(
            poll_interval=0,
            allowed_updates=ALLOWED_UPDATES,
            bootstrap_retries=bootstrap_retries,
            close_loop=False,
        )
    finally:
        # A start that failed part-way leaves the Bot API session open: PTB's shutdown closes only what
        # an initialize that succeeded opened.
        loop = asyncio.get_event_loop()
        loop.run_until_complete(application.bot.request.shutdown())
        loop.close()
