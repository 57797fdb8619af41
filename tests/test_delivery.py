"""alerts/delivery.py draining the outbox, through bot/transport.py's transport, to the Bot API emulator.

The real PTB ``Bot`` talks HTTP to the emulator, so Telegram's answers (200, 500, 429 with retry_after,
403, 400, 400 with migrate_to_chat_id) reach ``drain`` exactly as PTB raises them. Wall time is the
``FakeClock``; the ``Pacer`` runs on ``FakeMonotonic``, whose sleep moves it instead of waiting — except in
the one test at Telegram's real limits. The service message of a group's upgrade goes through the whole
Application (``DirectBot``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from telegram import Bot
from telegram.ext import ExtBot

from alerts.delivery import (
    BACKOFF_MAX,
    BACKOFF_START,
    GIVE_UP_AFTER,
    DrainReport,
    Limits,
    Pacer,
    backoff,
    drain,
)
from alerts.rules import parse_rule
from alerts.store import AlertStore, Chat
from bot.limiter import Limiter
from bot.transport import transport
from testing.telegram import ApiCall, TelegramEmulator
from testing.world import TEST_TOKEN
from tests.conftest import DirectBot, FakeClock

ANN, BOB, CAT = 101, 202, 303
GROUP = -100500


class FakeMonotonic:
    """The Pacer's monotonic clock on virtual time: sleeping never waits for real. Once the senders that
    can run have run, time jumps to the earliest wake-up, so they wake in the order a real clock gives."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), woken))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.create_task(self._advance())
        await woken

    async def _advance(self) -> None:
        while self._sleepers:
            for _ in range(5):  # every sender that is not asleep runs on (and falls asleep) first
                await asyncio.sleep(0)
            wake, _, woken = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            woken.set_result(None)


@pytest.fixture
def ticks() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def pacer(ticks: FakeMonotonic) -> Pacer:
    """Telegram's limits, on fake time."""
    return Pacer(Limits(), clock=ticks, sleep=ticks.sleep)


@pytest_asyncio.fixture
async def bot(telegram_emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    """PTB's bot with capgap's rate limiter, as the Application has it; unthrottled, as pacing is the
    ``Pacer``'s job here."""
    limiter = Limiter(0, group_per_minute=0)
    async with ExtBot(TEST_TOKEN, base_url=telegram_emulator.base_url, rate_limiter=limiter) as real_bot:
        yield real_bot


def queue(store: AlertStore, clock: FakeClock, *messages: tuple[int, str]) -> list[int]:
    """Queue (chat, text) rows a second apart, as refreshes would; returns their outbox ids."""
    for chat_id, text in messages:
        store.outbox.queue(chat_id, text, "alert", clock())
        clock.advance(seconds=1)
    return [int(r[0]) for r in store.db.execute("SELECT id FROM outbox ORDER BY id").fetchall()][
        -len(messages) :
    ]


def row(store: AlertStore, row_id: int) -> dict[str, object]:
    (found,) = store.db.query("SELECT * FROM outbox WHERE id = ?", [row_id])
    return found


def texts_sent(emu: TelegramEmulator, chat_id: int) -> list[str | None]:
    return [m.text for m in emu.sent_to(chat_id)]


def send_calls(emu: TelegramEmulator, chat_id: int | None = None) -> list[ApiCall]:
    return [c for c in emu.calls if c.method == "sendMessage" and (chat_id is None or c.chat_id == chat_id)]


# --- through the emulator -----------------------------------------------------------------------------


async def test_every_pending_row_is_sent_once_and_marked_sent(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """Each due row reaches its chat as HTML, in order, once; a second drain sends nothing."""
    ids = queue(store, clock, (ANN, "<b>one</b>"), (BOB, "two"), (ANN, "three"), (CAT, "four"), (ANN, "five"))

    report = await drain(store, transport(bot), clock, pacer)

    assert report == DrainReport(sent=5)
    assert texts_sent(telegram_emulator, ANN) == ["<b>one</b>", "three", "five"]
    assert texts_sent(telegram_emulator, BOB) == ["two"] and texts_sent(telegram_emulator, CAT) == ["four"]
    assert telegram_emulator.sent_to(ANN)[0].plain_text == "one"  # parsed as HTML by "Telegram"
    assert {(row(store, i)["status"], row(store, i)["attempts"]) for i in ids} == {("sent", 1)}
    assert row(store, ids[0])["sent_at"] == clock().isoformat()
    assert store.outbox.backlog() == (0, None)

    assert await drain(store, transport(bot), clock, pacer) == DrainReport()
    assert len(send_calls(telegram_emulator)) == 5


async def test_a_500_is_retried_after_the_backoff_and_delivered_exactly_once(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """A 5xx counts an attempt and postpones the row by the backoff; then it goes out, once."""
    (row_id,) = queue(store, clock, (ANN, "RUT rose to 2,000"))
    telegram_emulator.fail("sendMessage", 500)

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(retried=1)
    failed = row(store, row_id)
    assert (failed["status"], failed["attempts"]) == ("pending", 1)
    assert "Internal Server Error" in str(failed["error"])
    assert failed["due_at"] == (clock() + BACKOFF_START).isoformat()

    clock.advance(seconds=BACKOFF_START.total_seconds() - 1)
    assert await drain(store, transport(bot), clock, pacer) == DrainReport()  # not due yet
    clock.advance(seconds=1)
    assert await drain(store, transport(bot), clock, pacer) == DrainReport(sent=1)

    assert texts_sent(telegram_emulator, ANN) == ["RUT rose to 2,000"]
    assert [c.status for c in send_calls(telegram_emulator)] == [500, 200]
    assert (row(store, row_id)["status"], row(store, row_id)["attempts"]) == ("sent", 2)


async def test_a_429_postpones_the_row_by_retry_after_without_counting_an_attempt(
    store: AlertStore,
    clock: FakeClock,
    bot: Bot,
    telegram_emulator: TelegramEmulator,
    pacer: Pacer,
    ticks: FakeMonotonic,
) -> None:
    """RetryAfter: the row waits exactly retry_after seconds, attempts unchanged, and all sending pauses."""
    (row_id,) = queue(store, clock, (ANN, "SPX fell to 4,500"))
    telegram_emulator.fail("sendMessage", 429, retry_after=7)

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(retried=1)
    postponed = row(store, row_id)
    assert (postponed["status"], postponed["attempts"]) == ("pending", 0)
    assert postponed["due_at"] == (clock() + timedelta(seconds=7)).isoformat()
    refused_at = ticks()

    clock.advance(seconds=6)
    assert await drain(store, transport(bot), clock, pacer) == DrainReport()
    clock.advance(seconds=1)
    assert await drain(store, transport(bot), clock, pacer) == DrainReport(sent=1)

    assert ticks() - refused_at >= 7.0  # the pacer held every send for the time Telegram asked
    assert texts_sent(telegram_emulator, ANN) == ["SPX fell to 4,500"]
    assert (row(store, row_id)["status"], row(store, row_id)["attempts"]) == ("sent", 1)


async def test_a_429_through_the_bots_own_limiter_reaches_the_outbox_at_once_and_is_no_error(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]],
    clock: FakeClock,
    pacer: Pacer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Application's bot with Telegram's limits on (CAPGAP_RATE_LIMIT=30): the rate limiter hands the
    429 to the outbox without waiting or retrying it (one call), the row is postponed by retry_after, and
    nothing is logged as an error."""
    direct = await direct_bot_factory(rate_limit=30)
    store, emu = direct.services.alerts, direct.emulator
    (row_id,) = queue(store, clock, (ANN, "SPX fell to 4,500"))
    emu.fail("sendMessage", 429, retry_after=7)

    report = await drain(store, transport(direct.application.bot), clock, pacer)

    assert report == DrainReport(retried=1)
    assert [c.status for c in send_calls(emu)] == [429]
    assert row(store, row_id)["due_at"] == (clock() + timedelta(seconds=7)).isoformat()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    clock.advance(seconds=7)
    assert await drain(store, transport(direct.application.bot), clock, pacer) == DrainReport(sent=1)
    assert texts_sent(emu, ANN) == ["SPX fell to 4,500"]


async def test_a_403_deactivates_the_chat_pauses_its_rules_and_drops_its_rows(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """Blocked by the user: one refused send, then nothing more for that chat; other chats are served."""
    for chat_id in (ANN, BOB):
        store.rules.add(chat_id, parse_rule("rut cross 2000"), 1923.65, clock())
    ids = queue(store, clock, (ANN, "a1"), (BOB, "b1"), (ANN, "a2"), (BOB, "b2"), (ANN, "a3"))
    telegram_emulator.block(ANN)

    report = await drain(store, transport(bot), clock, pacer)

    assert report == DrainReport(sent=2, blocked=1)
    assert len(send_calls(telegram_emulator, ANN)) == 1
    assert texts_sent(telegram_emulator, BOB) == ["b1", "b2"]
    ann, bob = store.chats.get(ANN), store.chats.get(BOB)
    assert ann is not None and not ann.active and bob is not None and bob.active
    assert store.db.execute("SELECT chat_id, paused FROM rules ORDER BY rule_id").fetchall() == [
        (ANN, 1),
        (ANN, 1),
        (BOB, 0),
        (BOB, 0),
    ]
    assert store.rules.active.groupby("chat_id")["paused"].all().to_dict() == {ANN: True, BOB: False}
    assert [row(store, i)["status"] for i in ids] == ["dropped", "sent", "dropped", "sent", "dropped"]

    clock.advance(hours=1)
    assert await drain(store, transport(bot), clock, pacer) == DrainReport()
    assert len(send_calls(telegram_emulator, ANN)) == 1


async def test_a_chat_that_no_longer_exists_is_treated_as_blocked(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """Telegram's 400 "chat not found" is not a bad message: the chat is deactivated, not retried."""
    store.chats.register(CAT, now=clock())
    telegram_emulator.strict_chats = True  # CAT never wrote to this emulator: "chat not found"
    (row_id,) = queue(store, clock, (CAT, "hello?"))

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(blocked=1)
    assert store.chats.get(CAT) is not None and not store.chats.get(CAT).active  # type: ignore[union-attr]
    assert row(store, row_id)["status"] == "dropped"


# --- a group upgraded to a supergroup --------------------------------------------------------------------

OLD_GROUP, SUPERGROUP = -4001, -1004001  # Telegram gives the supergroup a new, -100-prefixed id
UPGRADED = "Bad Request: group chat was upgraded to a supergroup chat"


async def test_a_group_upgraded_to_a_supergroup_gets_its_alerts_at_the_new_id(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """A send refused with migrate_to_chat_id moves the chat (settings kept), its rules on disk and in
    memory and its queued rows to the new id, pausing and dropping nothing; the next drain delivers them
    there, in order."""
    store.chats.register(OLD_GROUP, "group", now=clock())
    store.chats.set_zone(OLD_GROUP, "Europe/Berlin")
    store.chats.set_digest(OLD_GROUP, "18:30")
    group_id, _ = store.rules.add(OLD_GROUP, parse_rule("rut cross 2000"), 1923.65, clock())
    ids = queue(store, clock, (OLD_GROUP, "g1"), (BOB, "b1"), (OLD_GROUP, "g2"))
    telegram_emulator.fail(
        "sendMessage",
        400,
        times=None,
        chat_id=OLD_GROUP,
        description=UPGRADED,
        migrate_to_chat_id=SUPERGROUP,
    )

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(sent=1, moved=1)
    assert store.chats.get(OLD_GROUP) is None
    assert store.chats.get(SUPERGROUP) == Chat(SUPERGROUP, "supergroup", "Europe/Berlin", "18:30", True)
    assert store.db.execute("SELECT chat_id, paused FROM rules").fetchall() == [(SUPERGROUP, 0)] * 2
    assert (
        store.rules.active["chat_id"].tolist() == [SUPERGROUP] * 2 and not store.rules.active["paused"].any()
    )
    assert [g.number for g in store.rules.groups(SUPERGROUP)] == [group_id]
    assert [(row(store, i)["chat_id"], row(store, i)["status"], row(store, i)["attempts"]) for i in ids] == [
        (SUPERGROUP, "pending", 0),
        (BOB, "sent", 1),
        (SUPERGROUP, "pending", 0),
    ]

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(sent=2)
    assert texts_sent(telegram_emulator, SUPERGROUP) == ["g1", "g2"]
    assert len(send_calls(telegram_emulator, OLD_GROUP)) == 1  # the one refusal, never tried again
    assert store.outbox.backlog() == (0, None)


def service_message(emu: TelegramEmulator, chat: dict[str, Any], **migration: int) -> dict[str, Any]:
    """The Update for a service message Telegram posts in ``chat`` when a group is upgraded."""
    sender = {"id": 10_001, "is_bot": False, "first_name": "Ada"}
    message = {"message_id": 1, "date": int(time.time()), "chat": chat, "from": sender, **migration}
    return emu.queue_update({"message": message})


async def test_the_upgrade_service_message_moves_the_chat_before_any_send_is_refused(
    direct_bot: DirectBot,
) -> None:
    """Telegram's "migrated to" message in the old group moves its rules and queued alerts at once, and
    the bot says nothing; the "migrated from" message in the supergroup then finds nothing left to move."""
    alerts, emu = direct_bot.services.alerts, direct_bot.emulator
    now = direct_bot.services.now()
    alerts.chats.register(OLD_GROUP, "group", now=now)
    alerts.rules.add(OLD_GROUP, parse_rule("spx above 6000"), 4780.94, now)
    alerts.outbox.queue(OLD_GROUP, "queued before the upgrade", "alert", now)
    old = emu.add_chat(OLD_GROUP, chat_type="group", title="Small caps club")
    new = emu.add_chat(SUPERGROUP, chat_type="supergroup", title="Small caps club")

    moved_to = service_message(emu, old, migrate_to_chat_id=SUPERGROUP)
    assert await direct_bot.process(moved_to, OLD_GROUP) == []

    def where_everything_is() -> list[object]:
        return [
            alerts.chats.get(OLD_GROUP),
            alerts.chats.get(SUPERGROUP),
            alerts.db.execute("SELECT chat_id FROM rules").fetchall(),
            alerts.rules.active["chat_id"].tolist(),
            alerts.db.execute("SELECT chat_id, status FROM outbox").fetchall(),
        ]

    after_move = where_everything_is()
    assert after_move == [
        None,
        Chat(SUPERGROUP, "supergroup", "America/New_York", None, True),
        [(SUPERGROUP,)],
        [SUPERGROUP],
        [(SUPERGROUP, "pending")],
    ]
    moved_from = service_message(emu, new, migrate_from_chat_id=OLD_GROUP)
    assert await direct_bot.process(moved_from, SUPERGROUP) == []
    assert where_everything_is() == after_move


async def test_a_400_bad_html_is_given_up_and_the_chats_next_rows_still_go(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """Telegram refusing the text itself is final: the row fails once, is never retried, and does not
    hold up the chat's later messages."""
    bad, good = queue(store, clock, (ANN, "<b>unclosed"), (ANN, "<i>fine</i>"))

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(sent=1, failed=1)
    failed = row(store, bad)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert "Can't parse entities" in str(failed["error"])
    assert row(store, good)["status"] == "sent"
    assert texts_sent(telegram_emulator, ANN) == ["<i>fine</i>"]

    clock.advance(days=1)
    assert await drain(store, transport(bot), clock, pacer) == DrainReport()
    assert len(send_calls(telegram_emulator, ANN)) == 2


async def retry_until(
    store: AlertStore,
    bot: Bot,
    clock: FakeClock,
    pacer: Pacer,
    row_id: int,
    *,
    for_as_long_as: timedelta,
) -> list[timedelta]:
    """Drain at each moment the row falls due while it keeps failing and is younger than ``for_as_long_as``;
    returns the wait each failed try set. The clock is left at the row's next due time."""
    created = datetime.fromisoformat(str(row(store, row_id)["created_at"]))
    waits = []
    while clock() - created < for_as_long_as:
        assert await drain(store, transport(bot), clock, pacer) == DrainReport(retried=1)
        current = row(store, row_id)
        assert current["status"] == "pending"
        due = datetime.fromisoformat(str(current["due_at"]))
        waits.append(due - clock())
        clock.now = due
    return waits


async def test_a_row_is_given_up_by_its_age_not_by_its_attempts(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """Persistent 5xx: 5 s, 10 s, 20 s… capped at BACKOFF_MAX, still pending after dozens of attempts; the
    first try that fails once the row is GIVE_UP_AFTER old fails it, saying why, and it is never sent again."""
    (row_id,) = queue(store, clock, (ANN, "never arrives"))
    created = datetime.fromisoformat(str(row(store, row_id)["created_at"]))
    telegram_emulator.fail("sendMessage", 500, times=None)

    waits = await retry_until(store, bot, clock, pacer, row_id, for_as_long_as=GIVE_UP_AFTER)

    assert waits == [backoff(n) for n in range(len(waits))]
    assert waits[:3] == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=20)]
    assert waits[-1] == BACKOFF_MAX and backoff(1000) == BACKOFF_MAX
    assert len(waits) > 40  # far past the eight attempts that used to end it
    assert clock() - created - BACKOFF_MAX < GIVE_UP_AFTER <= clock() - created

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(failed=1)
    given_up = row(store, row_id)
    assert (given_up["status"], given_up["attempts"]) == ("failed", len(waits) + 1)
    age = (clock() - created).total_seconds() / 3600
    assert given_up["error"] == (
        f"gave up after {age:.1f} h undelivered ({len(waits) + 1} attempts): Internal Server Error"
    )
    assert len(send_calls(telegram_emulator, ANN)) == len(waits) + 1
    clock.advance(days=1)
    assert await drain(store, transport(bot), clock, pacer) == DrainReport()


async def test_a_two_hour_outage_delays_alerts_but_loses_none(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """Telegram answering 502 for two hours: the chat's first alert is retried throughout, the one queued
    meanwhile waits behind it, and once Telegram is back both arrive, once each and in order."""
    (first,) = queue(store, clock, (ANN, "RUT rose to 2,000"))
    telegram_emulator.fail("sendMessage", 502, times=None)

    waits = await retry_until(store, bot, clock, pacer, first, for_as_long_as=timedelta(hours=1))
    (second,) = queue(store, clock, (ANN, "RUT fell to 1,980"))
    waits += await retry_until(store, bot, clock, pacer, first, for_as_long_as=timedelta(hours=2))
    assert max(waits) == BACKOFF_MAX
    telegram_emulator.clear_faults()  # Telegram is back; the next try is at most BACKOFF_MAX later

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(sent=2)
    assert texts_sent(telegram_emulator, ANN) == ["RUT rose to 2,000", "RUT fell to 1,980"]
    assert (row(store, first)["status"], row(store, first)["attempts"]) == ("sent", len(waits) + 1)
    assert (row(store, second)["status"], row(store, second)["attempts"]) == ("sent", 1)
    assert [c.status for c in send_calls(telegram_emulator)] == [502] * len(waits) + [200, 200]
    assert store.outbox.backlog() == (0, None)


async def test_per_chat_order_holds_while_an_earlier_row_waits_for_its_retry(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator, pacer: Pacer
) -> None:
    """A chat's messages arrive in the order they were queued, even when the first one had to be retried
    and drains ran in between; other chats are not held up."""
    queue(
        store,
        clock,
        (ANN, "a1 RUT rose to 2,000"),
        (BOB, "b1"),
        (ANN, "a2 RUT fell to 1,980"),
        (BOB, "b2"),
        (ANN, "a3 RUT rose to 2,000"),
    )
    telegram_emulator.fail("sendMessage", 500, chat_id=ANN)

    assert await drain(store, transport(bot), clock, pacer) == DrainReport(sent=2, retried=1)
    clock.advance(seconds=2)  # the delivery job's next runs, before the backoff is over
    assert await drain(store, transport(bot), clock, pacer) == DrainReport()
    clock.advance(seconds=2)
    assert await drain(store, transport(bot), clock, pacer) == DrainReport()
    clock.advance(seconds=BACKOFF_START.total_seconds())
    assert await drain(store, transport(bot), clock, pacer) == DrainReport(sent=3)

    assert texts_sent(telegram_emulator, ANN) == [
        "a1 RUT rose to 2,000",
        "a2 RUT fell to 1,980",
        "a3 RUT rose to 2,000",
    ]
    assert texts_sent(telegram_emulator, BOB) == ["b1", "b2"]


async def test_a_burst_at_telegrams_real_limits_draws_no_429(
    store: AlertStore, clock: FakeClock, bot: Bot, telegram_emulator: TelegramEmulator
) -> None:
    """40 alerts to 40 chats through a real Pacer against enforced flood limits: all sent, zero 429s.
    (This one really waits, about 1.3 s: 30 messages a second.)"""
    telegram_emulator.enforce_limits()  # 30/s overall, 1/s per chat, 20/min per group
    queue(store, clock, *((1000 + n, f"alert {n}") for n in range(40)))

    report = await drain(store, transport(bot), clock, Pacer())

    assert report == DrainReport(sent=40)
    assert telegram_emulator.too_many_requests == 0
    times = sorted(c.time for c in send_calls(telegram_emulator))
    assert times[-1] - times[0] >= 1.0  # the 30th message had to wait for the next second


# --- the Pacer, on fake time --------------------------------------------------------------------------


class Recorder:
    """A transport that records when (on the Pacer's clock) each message would have gone out."""

    def __init__(self, ticks: FakeMonotonic) -> None:
        self.ticks = ticks
        self.sends: list[tuple[float, int, str]] = []

    async def __call__(self, chat_id: int, text: str) -> None:
        self.sends.append((self.ticks(), chat_id, text))

    def times(self, chat_id: int | None = None) -> list[float]:
        return sorted(t for t, c, _ in self.sends if chat_id is None or c == chat_id)


def most_in_any_window(times: list[float], span: float) -> int:
    """The most sends inside any window [t, t + span)."""
    eps = 1e-9
    return max(sum(1 for u in times if t - eps <= u < t + span - eps) for t in times)


async def test_pacer_keeps_one_message_a_second_under_the_30_a_second_limit(
    store: AlertStore, clock: FakeClock, pacer: Pacer, ticks: FakeMonotonic
) -> None:
    """100 chats at once: 29 sends in any second, evenly spaced, so a send that arrives late still lands
    within Telegram's 30; and no slower than that either."""
    queue(store, clock, *((1000 + n, f"alert {n}") for n in range(100)))
    recorder = Recorder(ticks)

    assert await drain(store, recorder, clock, pacer) == DrainReport(sent=100)

    times = recorder.times()
    assert most_in_any_window(times, 1.0) == 29
    assert times[-1] - times[0] == pytest.approx(99 / 29)


async def test_pacer_wakes_up_late_and_still_keeps_its_rate_without_bunching(
    store: AlertStore, clock: FakeClock, ticks: FakeMonotonic
) -> None:
    """Every wake-up 5 ms late (a busy event loop): the sends stay on the 29-a-second grid on average,
    rather than drifting 5 ms further back each time, and still never more than 30 in any second."""

    async def late(seconds: float) -> None:
        await ticks.sleep(seconds + 0.005)

    queue(store, clock, *((1000 + n, f"alert {n}") for n in range(100)))
    recorder = Recorder(ticks)

    await drain(store, recorder, clock, Pacer(Limits(), clock=ticks, sleep=late))

    times = recorder.times()
    assert most_in_any_window(times, 1.0) <= 30
    assert times[-1] - times[0] == pytest.approx(99 / 29, abs=0.006)  # one wake-up's lateness at most
    # Drifting instead would have taken 99 × (1/29 + 0.005) s.
    assert times[-1] - times[0] < 99 * (1 / 29 + 0.005) - 0.4


async def test_pacer_sends_at_most_one_message_a_second_to_a_chat(
    store: AlertStore, clock: FakeClock, pacer: Pacer, ticks: FakeMonotonic
) -> None:
    """Three alerts to one chat go a second apart, in order, while another chat is served meanwhile."""
    queue(store, clock, (ANN, "1"), (ANN, "2"), (BOB, "x"), (ANN, "3"))
    recorder = Recorder(ticks)

    await drain(store, recorder, clock, pacer)

    ann = recorder.times(ANN)
    assert [b - a for a, b in itertools.pairwise(ann)] == pytest.approx([1.0, 1.0])
    assert [text for _, chat, text in recorder.sends if chat == ANN] == ["1", "2", "3"]
    assert recorder.times(BOB)[0] < ann[1]  # Bob does not wait behind Ann's per-chat spacing


async def test_pacer_sends_at_most_20_messages_a_minute_to_a_group(
    store: AlertStore, clock: FakeClock, pacer: Pacer, ticks: FakeMonotonic
) -> None:
    """A group (negative id) gets 20 messages in a minute, the 21st a minute after the first."""
    queue(store, clock, *((GROUP, f"group {n}") for n in range(25)), (ANN, "private"))
    recorder = Recorder(ticks)

    assert await drain(store, recorder, clock, pacer) == DrainReport(sent=26)

    group = recorder.times(GROUP)
    assert most_in_any_window(group, 60.0) == 20
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(group))
    assert group[20] - group[0] == pytest.approx(60.0)
    assert recorder.times(ANN)[0] - group[0] < 1.0  # a private chat is not held by the group's minute
