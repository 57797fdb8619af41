"""Command families. Each module has ``COMMANDS`` and ``register(application)``.

The order here is the order of /help and of Telegram's command menu.
"""

from bot.commands import admin, alerts, basics, costs, privacy, standing, targets, valuation

ALL_FAMILIES = (basics, standing, costs, valuation, targets, alerts, privacy, admin)
