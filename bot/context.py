"""What the running bot keeps for its whole life, typed: PTB's ``bot_data``, built once in ``build_app``.

Handlers and jobs reach it as ``context.bot_data`` (``Context``); nothing is looked up by a string key and
nothing is created lazily: the locks and the chart ids exist from the start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot, JobQueue

from bot.limiter import Retries

if TYPE_CHECKING:
    from alerts.delivery import Pacer
    from bot.guard import Guard
    from bot.health import HealthServer
    from bot.services import Services


@dataclass
class BotData:
    services: Services
    guard: Guard  # the allow-list and flood limits every update passes first (bot/guard.py)
    pacer: Pacer  # the outbox's pace, shared by every drain
    health: HealthServer | None = None  # /healthz, when a port is set
    # Telegram keeps every photo it received: the same chart is sent again by its file_id (bot/handlers.py).
    photo_ids: dict[int, str] = field(default_factory=dict)
    # Jobs overlap (a refresh, the close, the fund facts): evaluation passes take turns, and so do drains.
    evaluation_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    delivery_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


Bot: TypeAlias = ExtBot[Retries]
Context: TypeAlias = CallbackContext[Bot, dict[Any, Any], dict[Any, Any], BotData]
# The application's own context and job-queue types stay open: PTB's builder does not carry the context
# types over into its job queue's type, and a callback's ``context.application`` does not name them.
App: TypeAlias = Application[Bot, Any, dict[Any, Any], dict[Any, Any], BotData, JobQueue[Any]]


def context_types(data: BotData) -> ContextTypes[Context, dict[Any, Any], dict[Any, Any], BotData]:
    """The context every callback gets, with ``data`` as its ``bot_data``.

    PTB makes ``bot_data`` by calling what it is given with no arguments (and checks its type only when a
    persistence restores it, which capgap does not use): it is handed a maker of the one object built here.
    """
    return ContextTypes(context=CallbackContext, bot_data=cast("type[BotData]", lambda: data))
