"""The NYSE trading calendar (exchange-calendars XNYS): sessions, closes, regular hours, staleness, and
the market's own clock (New York time, the 16:00 close)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

# Where the market is: its sessions, its closes and "ET" in every message are New York time.
NEW_YORK = ZoneInfo("America/New_York")
# The regular close; half days close at 13:00 (``session_close`` knows which is which).
REGULAR_CLOSE = time(16, 0)
# Yahoo publishes the official daily close a little after the bell; before then the day's bar is live.
CLOSE_SETTLE = timedelta(minutes=20)


@lru_cache(maxsize=1)
def _xnys() -> Any:
    # Imported on first use: building the calendar (and importing exchange-calendars, 0.1 s) is paid only
    # by a process that asks it something.
    import exchange_calendars as xcals

    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    return xcals.get_calendar("XNYS", start="1990-01-02", end=today + pd.DateOffset(years=2))


def _ts(moment: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(moment)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def is_session(day: date) -> bool:
    return bool(_xnys().is_session(pd.Timestamp(day)))


def session_close(day: date) -> datetime:
    """When the session of ``day`` closes (UTC); half days close early."""
    return _xnys().session_close(pd.Timestamp(day)).to_pydatetime()


def session_open(day: date) -> datetime:
    return _xnys().session_open(pd.Timestamp(day)).to_pydatetime()


def is_regular_hours(now: datetime) -> bool:
    """True while NYSE is in its regular session (no weekends, holidays, or after a half day's close): from
    the open, up to the close excluded. (Asked of the session's open and close, not of the calendar's
    minute index, which costs a process 40 ms to build.)"""
    moment = _ts(now)
    day = moment.tz_convert(NEW_YORK).date()
    if not is_session(day):
        return False
    return session_open(day) <= moment.to_pydatetime() < session_close(day)


def last_closed_session(now: datetime, settle: timedelta = CLOSE_SETTLE) -> date:
    """The latest session whose official close is known by ``now`` (its close plus ``settle``)."""
    cal = _xnys()
    moment = _ts(now) - settle
    session = cal.date_to_session(moment.tz_convert(NEW_YORK).tz_localize(None).normalize(), "previous")
    if cal.session_close(session) > moment:
        session = cal.previous_session(session)
    return pd.Timestamp(session).date()


@dataclass(frozen=True)
class ClosedSpan:
    """A stretch of time over which ``last_closed_session`` is ``session``: from that session's settled
    close (``since``) up to the next one (``until``, excluded)."""

    session: date
    since: datetime
    until: datetime

    def holds(self, now: datetime) -> bool:
        moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)  # naive is UTC, as in ``_ts``
        return self.since <= moment < self.until


def closed_span(now: datetime, settle: timedelta = CLOSE_SETTLE) -> ClosedSpan:
    """The span around ``now`` with one last closed session: what ``last_closed_session`` answers for
    every moment of it, so a caller asking often asks the calendar once per close."""
    session = last_closed_session(now, settle)
    since = session_close(session) + settle
    until = next_close(now - settle) + settle
    return ClosedSpan(session, since, until)


def previous_session(day: date) -> date:
    cal = _xnys()
    return (
        pd.Timestamp(cal.date_to_session(pd.Timestamp(day), "previous")).date()
        if not cal.is_session(pd.Timestamp(day))
        else pd.Timestamp(cal.previous_session(pd.Timestamp(day))).date()
    )


def current_session(now: datetime) -> date | None:
    """The session trading right now, or None outside regular hours."""
    if not is_regular_hours(now):
        return None
    return pd.Timestamp(_xnys().minute_to_session(_ts(now), "previous")).date()


def next_close(now: datetime) -> datetime:
    """The next official close strictly after ``now`` (UTC)."""
    cal = _xnys()
    ts = _ts(now)
    # By sessions, not minutes: the calendar's minute index (every trading minute since 1990) takes longer
    # to build than the calendar itself. A session opens and closes on its own New York date, so the
    # close after ``now`` is that date's session's (or the next session's, once it has closed).
    session = cal.date_to_session(ts.tz_convert(NEW_YORK).tz_localize(None).normalize(), "next")
    close = cal.session_close(session)
    if close <= ts:
        close = cal.session_close(cal.next_session(session))
    return close.to_pydatetime()


@dataclass(frozen=True)
class Freshness:
    latest: date | None  # the newest session the data holds
    expected: date  # the newest session whose close should be known by now
    stale: bool

    @property
    def sessions_behind(self) -> int | None:
        if self.latest is None:
            return None
        # Sessions strictly after ``latest``: right even when ``latest`` itself is no session (a bar dated
        # on a holiday), and never negative when the data runs ahead of ``expected``.
        start = pd.Timestamp(self.latest) + pd.Timedelta(days=1)
        return len(_xnys().sessions_in_range(start, pd.Timestamp(self.expected)))


def freshness(latest: date | None, now: datetime) -> Freshness:
    """Whether closes ending at ``latest`` are as recent as the NYSE calendar says they should be."""
    expected = last_closed_session(now)
    return Freshness(latest, expected, latest is None or latest < expected)


def utc_now() -> datetime:
    return datetime.now(UTC)
