"""The Yahoo Finance replay; see ``testing.yahoo.server``."""

from testing.yahoo.server import *  # noqa: F403
