"""The Telegram Bot API emulator; see ``testing.telegram.server``."""

from testing.telegram.server import *  # noqa: F403
