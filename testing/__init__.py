"""capgap's protocol peers and the offline world its tests and benchmarks share.

Not shipped with the bot (pyproject's package list leaves it out): tests and ``python -m bench`` import it
from the checkout, whose root is on ``sys.path`` for both.

- ``testing.telegram``: a Telegram Bot API emulator the real python-telegram-bot stack talks HTTP to.
- ``testing.yahoo``: a Yahoo Finance replay server yfinance talks HTTP to.
- ``testing.world``: the shared market history, the test token and config, the warm history cache.
- ``testing.alerts_oracle``: the alert semantics as a plain loop, the oracle of the vectorised pass.
"""
