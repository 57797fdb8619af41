"""market/calendar.py: NYSE sessions, closes, regular hours and how stale the closes are."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from market import calendar
from market.calendar import CLOSE_SETTLE, NEW_YORK, Freshness, closed_span, freshness, last_closed_session

# exchange-calendars trips pandas 3.1 deprecations (building XNYS; checking a minute is in range).
# pyproject.toml ignores the first only, and a `-W error` on the pytest command line outranks pyproject's
# filters; marks outrank both.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Series.values returning an ndarray that drops timezone:pandas.errors.Pandas4Warning"
    ),
    pytest.mark.filterwarnings(
        "ignore:DatetimeIndex.values returning an ndarray that drops timezone:pandas.errors.Pandas4Warning"
    ),
]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- sessions and closes ----------------------------------------------------------------------------


def test_sessions_skip_weekends_and_holidays() -> None:
    assert calendar.is_session(date(2024, 1, 18))  # a Thursday
    assert not calendar.is_session(date(2024, 1, 20))  # Saturday
    assert not calendar.is_session(date(2024, 1, 15))  # Martin Luther King Jr. Day
    assert not calendar.is_session(date(2024, 7, 4))  # Independence Day
    assert calendar.is_session(date(2024, 11, 29))  # the day after Thanksgiving trades, briefly


def test_session_close_follows_daylight_saving_and_half_days() -> None:
    assert calendar.session_close(date(2024, 1, 18)) == utc(2024, 1, 18, 21, 0)  # 16:00 EST
    assert calendar.session_close(date(2024, 7, 5)) == utc(2024, 7, 5, 20, 0)  # 16:00 EDT
    assert calendar.session_close(date(2024, 11, 29)) == utc(2024, 11, 29, 18, 0)  # half day: 13:00 EST
    assert calendar.session_open(date(2024, 1, 18)) == utc(2024, 1, 18, 14, 30)


def test_previous_session_of_a_session_and_of_a_holiday() -> None:
    assert calendar.previous_session(date(2024, 7, 5)) == date(2024, 7, 3)  # over the holiday
    assert calendar.previous_session(date(2024, 7, 4)) == date(2024, 7, 3)
    assert calendar.previous_session(date(2024, 7, 6)) == date(2024, 7, 5)  # Saturday -> Friday
    assert calendar.previous_session(date(2024, 1, 16)) == date(2024, 1, 12)  # Tuesday after MLK Day


# --- last_closed_session ----------------------------------------------------------------------------


def test_last_closed_session_before_and_after_a_normal_close() -> None:
    assert last_closed_session(utc(2024, 1, 18, 15, 0)) == date(2024, 1, 17)  # mid-session
    assert last_closed_session(utc(2024, 1, 18, 21, 0)) == date(2024, 1, 17)  # the bell itself
    assert last_closed_session(utc(2024, 1, 18, 23, 0)) == date(2024, 1, 18)
    assert last_closed_session(utc(2024, 1, 19, 3, 0)) == date(
        2024, 1, 18
    )  # after midnight UTC, still the 18th


def test_last_closed_session_waits_for_the_settle_window() -> None:
    close = utc(2024, 1, 18, 21, 0)
    assert timedelta(minutes=20) == CLOSE_SETTLE
    assert last_closed_session(close + CLOSE_SETTLE - timedelta(seconds=1)) == date(2024, 1, 17)
    assert last_closed_session(close + CLOSE_SETTLE) == date(2024, 1, 18)
    assert last_closed_session(close + timedelta(seconds=30), settle=timedelta(0)) == date(2024, 1, 18)
    assert last_closed_session(close + timedelta(minutes=50), settle=timedelta(hours=1)) == date(2024, 1, 17)


def test_last_closed_session_over_a_weekend_is_friday() -> None:
    for moment in (utc(2024, 1, 20, 12, 0), utc(2024, 1, 21, 23, 59), utc(2024, 1, 22, 14, 0)):
        assert last_closed_session(moment) == date(2024, 1, 19), moment


def test_last_closed_session_over_a_holiday() -> None:
    assert last_closed_session(utc(2024, 7, 4, 22, 0)) == date(2024, 7, 3)  # Independence Day evening
    assert last_closed_session(utc(2024, 7, 5, 12, 0)) == date(2024, 7, 3)  # before the next open
    assert last_closed_session(utc(2024, 7, 5, 20, 20)) == date(2024, 7, 5)


def test_last_closed_session_on_a_half_day() -> None:
    assert last_closed_session(utc(2024, 11, 29, 18, 19)) == date(2024, 11, 27)  # Thanksgiving was closed
    assert last_closed_session(utc(2024, 11, 29, 18, 20)) == date(2024, 11, 29)  # 18:00 close + 20 min
    assert last_closed_session(utc(2024, 11, 29, 20, 30)) == date(2024, 11, 29)


def test_last_closed_session_accepts_other_time_zones_and_naive_utc() -> None:
    assert last_closed_session(datetime(2024, 1, 18, 16, 25, tzinfo=NEW_YORK)) == date(2024, 1, 18)
    assert last_closed_session(datetime(2024, 1, 18, 16, 15, tzinfo=NEW_YORK)) == date(2024, 1, 17)
    assert last_closed_session(datetime(2024, 1, 18, 21, 25)) == date(2024, 1, 18)  # naive means UTC


# --- regular hours ----------------------------------------------------------------------------------


def test_regular_hours_on_a_normal_day() -> None:
    assert not calendar.is_regular_hours(utc(2024, 1, 18, 14, 29, 59))
    assert calendar.is_regular_hours(utc(2024, 1, 18, 14, 30))
    assert calendar.is_regular_hours(utc(2024, 1, 18, 20, 59, 30))
    assert not calendar.is_regular_hours(utc(2024, 1, 18, 21, 0))
    assert calendar.current_session(utc(2024, 1, 18, 17, 0)) == date(2024, 1, 18)
    assert calendar.current_session(utc(2024, 1, 18, 22, 0)) is None


def test_no_regular_hours_on_weekends_and_holidays() -> None:
    assert not calendar.is_regular_hours(utc(2024, 1, 20, 17, 0))
    assert not calendar.is_regular_hours(utc(2024, 7, 4, 17, 0))
    assert calendar.current_session(utc(2024, 7, 4, 17, 0)) is None


def test_half_day_afternoon_is_outside_regular_hours() -> None:
    assert calendar.is_regular_hours(utc(2024, 11, 29, 17, 59, 30))
    assert not calendar.is_regular_hours(utc(2024, 11, 29, 18, 0))
    assert not calendar.is_regular_hours(utc(2024, 11, 29, 19, 30))  # 14:30 ET: a normal day would trade
    assert calendar.current_session(utc(2024, 11, 29, 16, 0)) == date(2024, 11, 29)
    assert calendar.current_session(utc(2024, 11, 29, 19, 30)) is None


# --- next_close -------------------------------------------------------------------------------------


def test_next_close_is_strictly_after_now() -> None:
    assert calendar.next_close(utc(2024, 1, 18, 3, 0)) == utc(2024, 1, 18, 21, 0)  # before the open
    assert calendar.next_close(utc(2024, 1, 18, 15, 0)) == utc(2024, 1, 18, 21, 0)  # during the session
    assert calendar.next_close(utc(2024, 1, 18, 21, 0)) == utc(2024, 1, 19, 21, 0)  # at the bell
    assert calendar.next_close(utc(2024, 1, 18, 21, 0, 30)) == utc(2024, 1, 19, 21, 0)


def test_next_close_skips_weekends_and_holidays_and_knows_half_days() -> None:
    assert calendar.next_close(utc(2024, 1, 19, 22, 0)) == utc(2024, 1, 22, 21, 0)  # Friday evening
    assert calendar.next_close(utc(2024, 7, 3, 22, 0)) == utc(2024, 7, 5, 20, 0)  # over Independence Day
    assert calendar.next_close(utc(2024, 11, 27, 22, 0)) == utc(2024, 11, 29, 18, 0)  # the half day


# --- freshness --------------------------------------------------------------------------------------


def test_closes_through_the_last_settled_session_are_fresh() -> None:
    fresh = freshness(date(2024, 1, 18), utc(2024, 1, 18, 21, 30))
    assert fresh == Freshness(date(2024, 1, 18), date(2024, 1, 18), stale=False)
    assert fresh.sessions_behind == 0


def test_yesterdays_close_is_fresh_until_todays_settles() -> None:
    assert not freshness(date(2024, 1, 17), utc(2024, 1, 18, 21, 10)).stale
    late = freshness(date(2024, 1, 17), utc(2024, 1, 18, 21, 20))
    assert late.stale
    assert late.expected == date(2024, 1, 18)
    assert late.sessions_behind == 1


def test_friday_close_stays_fresh_over_a_long_weekend() -> None:
    # MLK Day: the Friday close is the newest there should be until Tuesday's close settles.
    assert not freshness(date(2024, 1, 12), utc(2024, 1, 15, 23, 0)).stale
    assert not freshness(date(2024, 1, 12), utc(2024, 1, 16, 21, 19)).stale
    assert freshness(date(2024, 1, 12), utc(2024, 1, 16, 21, 20)).sessions_behind == 1


def test_sessions_behind_counts_trading_days_not_calendar_days() -> None:
    # From Wednesday 10 Jan to Thursday 18 Jan: 11, 12, 16, 17, 18 (a weekend and MLK Day between).
    stale = freshness(date(2024, 1, 10), utc(2024, 1, 18, 22, 0))
    assert stale.stale
    assert stale.sessions_behind == 5


def test_sessions_behind_when_the_newest_close_is_dated_on_a_non_session() -> None:
    """A stale answer is never '0 trading days behind', even if the newest bar carries a holiday's date."""
    stale = freshness(date(2024, 1, 15), utc(2024, 1, 18, 22, 0))  # MLK Day bar; 16, 17 and 18 since
    assert stale.stale
    assert stale.sessions_behind == 3
    weekend = freshness(date(2024, 1, 13), utc(2024, 1, 16, 21, 30))  # a Saturday bar; Tuesday since
    assert weekend.stale
    assert weekend.sessions_behind == 1


def test_closes_newer_than_expected_are_fresh_and_not_behind() -> None:
    ahead = freshness(date(2024, 1, 19), utc(2024, 1, 18, 21, 30))
    assert not ahead.stale
    assert ahead.sessions_behind == 0


def test_no_closes_at_all_are_stale() -> None:
    empty = freshness(None, utc(2024, 1, 18, 21, 30))
    assert empty.stale
    assert empty.expected == date(2024, 1, 18)
    assert empty.sessions_behind is None


@pytest.mark.parametrize(
    "now",
    [
        utc(2024, 1, 18, 21, 30),  # a Thursday evening
        utc(2024, 1, 20, 12, 0),  # a Saturday: the span runs from Friday's close to Monday's
        utc(2024, 11, 29, 18, 25),  # just after a half day's settled close (13:00 + 20 min)
        utc(2024, 11, 28, 15, 0),  # Thanksgiving, closed
    ],
)
def test_a_closed_span_is_exactly_where_last_closed_session_stays_the_same(now: datetime) -> None:
    """The span's bounds are the moments the answer changes: the same session from ``since`` up to just
    before ``until``, the one before just before ``since``, a new one at ``until``."""
    span = closed_span(now)
    tick = timedelta(microseconds=1)
    assert span.holds(now)
    assert last_closed_session(now) == span.session
    assert last_closed_session(span.since) == span.session
    assert last_closed_session(span.until - tick) == span.session
    assert last_closed_session(span.since - tick) < span.session
    assert last_closed_session(span.until) > span.session
    assert not span.holds(span.since - tick) and not span.holds(span.until)
    # Each bound is a session's official close plus the settle time.
    assert span.since == calendar.session_close(span.session) + CLOSE_SETTLE
    assert span.until == calendar.session_close(last_closed_session(span.until)) + CLOSE_SETTLE


def test_a_closed_span_takes_naive_moments_as_utc() -> None:
    span = closed_span(utc(2024, 1, 18, 21, 30))
    assert span.holds(datetime(2024, 1, 18, 21, 30)) and not span.holds(datetime(2024, 1, 19, 21, 20))


def test_the_market_clock_is_new_york_with_a_16_00_close() -> None:
    close = calendar.session_close(date(2024, 1, 18)).astimezone(NEW_YORK)
    assert (
        (close.hour, close.minute) == (calendar.REGULAR_CLOSE.hour, calendar.REGULAR_CLOSE.minute) == (16, 0)
    )
