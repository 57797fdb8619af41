"""How often the fund-facts job fetches: one place for the job (``bot.jobs``) and for the answers that
say when the next valuation reading is due, so the promise and the schedule cannot drift apart."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

# Fund facts (expense ratios, the holdings' P/B and P/E) are published once a day at most.
FUNDS_EVERY: Final = timedelta(hours=20)
# The job wakes this often and fetches once FUNDS_EVERY has passed since the last fetch that worked.
FUNDS_CHECK: Final = timedelta(hours=1)


def next_funds_fetch(last_ok: datetime | None, now: datetime) -> datetime:
    """The latest moment the fund-facts job fetches again: at its first wake-up once FUNDS_EVERY has
    passed since ``last_ok`` (the last fetch that worked; None: never, so at its next wake-up)."""
    due = now if last_ok is None else max(now, last_ok + FUNDS_EVERY)
    return due + FUNDS_CHECK
