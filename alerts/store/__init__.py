"""What the alerts keep in SQLite, one room per table over one connection and its one write lock
(``database.connection.write_lock``):

- ``chats``: who the bot talks to, their zone and digest time, the counter alert numbers come from;
- ``rules``: the alert rules, in the table and in memory as columns, with their snapshot;
- ``observations``: the values rules were judged on;
- ``outbox``: the messages owed to chats, drained by ``alerts.delivery``;
- ``schema``: the tables' migrations.

``AlertStore`` opens the rooms on a database and runs what spans more than one of them in one transaction:
a refresh's decisions with the messages they queued (``commit``), a digest with its day, and a chat that
blocks the bot, moves or asks to be forgotten. After a crash either all of such a change is on disk or none
of it: a restart re-sends what is pending and never re-fires what was already queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from alerts.messages import snooze_over_text
from alerts.store.chats import Chat, Chats, Snooze
from alerts.store.observations import Observations
from alerts.store.outbox import Outbox, OutboxRow, day_bounds
from alerts.store.rules import MAX_GROUPS_PER_CHAT, ChatAlert, DuplicateRule, QuotaExceeded, Rules
from alerts.store.schema import DEFAULT_ZONE, MIGRATIONS
from database.connection import write_lock
from database.migrations import migrate

if TYPE_CHECKING:
    import sqlite_utils

    from alerts.evaluate import Evaluation

__all__ = [
    "DEFAULT_ZONE",
    "MAX_GROUPS_PER_CHAT",
    "AlertStore",
    "Chat",
    "ChatAlert",
    "Chats",
    "DuplicateRule",
    "Observations",
    "Outbox",
    "OutboxRow",
    "QuotaExceeded",
    "Rules",
    "Snooze",
    "Usage",
    "day_bounds",
]


@dataclass(frozen=True)
class Usage:
    """Counts for the operator (/stats)."""

    chats: int
    active_chats: int
    rules: int  # active alerts; a cross counts once
    paused_rules: int
    chats_with_rules: int
    alerts_sent: int  # in the day asked about


class AlertStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.lock = write_lock(db)  # one per connection: every room holds the same
        migrate(db, MIGRATIONS)
        self.chats = Chats(db)
        self.rules = Rules(db, self.chats)
        self.observations = Observations(db)
        self.outbox = Outbox(db)

    def commit(self, evaluation: Evaluation, messages: Sequence[tuple[int, str, str]], now: datetime) -> None:
        """Write the changed rule decisions and queue ``messages`` (chat_id, text, kind) in one transaction;
        memory follows once it is committed (see ``Rules.decisions``)."""
        with self.lock:
            decisions = self.rules.decisions(evaluation, now)
            with self.db.atomic():
                self.rules.write(decisions)
                self.outbox.queue_many(messages, now)
            self.rules.follow(decisions)

    def queue_digest(self, chat_id: int, day: date, text: str, now: datetime) -> None:
        """Queue a chat's digest and mark its day as done, together."""
        with self.lock, self.db.atomic():
            self.outbox.queue(chat_id, text, "digest", now)
            self.chats.digest_sent(chat_id, day)

    def deactivate_chat(self, chat_id: int, now: datetime) -> None:
        """The user blocked the bot: stop sending, pause the chat's rules, drop what is queued for it."""
        with self.lock, self.db.atomic():
            self.chats.deactivate(chat_id, now)
            self.chats.end_snooze(chat_id)  # its end must not resume what the block paused
            self.rules.pause_chat(chat_id)
            self.outbox.drop_pending(chat_id, "chat blocked the bot")

    def snooze_chat(self, chat_id: int, until: datetime) -> int:
        """Pause the chat's alerts until ``until`` (``/pause 3d``): those not paused already, plus those an
        earlier snooze still holds (the new time replaces its time). Returns how many this call paused."""
        with self.lock, self.db.atomic():
            earlier = self.chats.snooze(chat_id)
            numbers = set(self.rules.unpaused_numbers(chat_id))
            paused = self.rules.set_paused(chat_id, True)
            if earlier is not None:
                numbers |= set(earlier.numbers)
            self.chats.set_snooze(chat_id, until, sorted(numbers))
        return paused

    def wake_snoozed(self, now: datetime) -> list[tuple[Snooze, int]]:
        """End every snooze whose time has come: the alerts it paused resume (those deleted meanwhile are
        gone, and alerts paused on their own stay paused), and the chat is told, in the same transaction.
        Returns each snooze with the alerts resumed."""
        woken = []
        for candidate in self.chats.snoozes_over(now):
            with self.lock, self.db.atomic():
                # Read again under the lock: a /pause or a new snooze since the list was read wins.
                snooze = self.chats.snooze(candidate.chat_id)
                if snooze is None or snooze.until > now:
                    continue
                resumed = sum(self.rules.set_paused(snooze.chat_id, False, n) for n in snooze.numbers)
                self.chats.end_snooze(snooze.chat_id)
                if resumed:
                    self.outbox.queue(snooze.chat_id, snooze_over_text(resumed), "snooze", now)
            woken.append((snooze, resumed))
        return woken

    def release_from_snooze(self, chat_id: int, number: int) -> bool:
        """Alert ``number``, paused by the chat's snooze, stays paused when it ends (``/pause ID`` during a
        snooze); False when the snooze does not hold it."""
        with self.lock, self.db.atomic():
            snooze = self.chats.snooze(chat_id)
            if snooze is None or number not in snooze.numbers:
                return False
            self.chats.set_snooze(chat_id, snooze.until, [n for n in snooze.numbers if n != number])
            self.rules.set_paused(chat_id, True, number)  # it may have been resumed (/resume ID) meanwhile
            return True

    def set_chat_paused(self, chat_id: int, paused: bool) -> int:
        """Pause or resume all the chat's alerts for good, ending any snooze; returns how many changed."""
        with self.lock, self.db.atomic():
            self.chats.end_snooze(chat_id)
            return self.rules.set_paused(chat_id, paused)

    def forget_chat(self, chat_id: int) -> dict[str, int]:
        """Delete everything stored about ``chat_id``: its rules, its outbox rows, the chat itself.

        Observations and gap snapshots belong to the market, not to a chat, and stay. Returns the number
        of rows deleted from each table.
        """
        with self.lock, self.db.atomic():
            rules = self.rules.forget_chat(chat_id)
            outbox = self.outbox.forget_chat(chat_id)
            chats = self.chats.forget(chat_id)
        return {"rules": rules, "outbox": outbox, "chats": chats}

    def move_chat(self, old_chat_id: int, new_chat_id: int) -> dict[str, int]:
        """The chat has a new id (Telegram upgraded a group to a supergroup): its settings, rules and outbox
        rows follow it, in one transaction, so nothing queued is lost and nothing is left under the old id.

        Every outbox row moves, sent ones too: the daily alert limit and /forget count them by chat id.
        When the new id is already known (someone used the supergroup first), its settings are kept and
        the old chat's row goes. Calling again finds nothing under the old id and changes nothing: both
        the service message and a refused send may report the same move. Returns the rows moved per table.
        """
        if old_chat_id == new_chat_id:
            return {"chats": 0, "rules": 0, "outbox": 0}
        renumbered: dict[int, int] = {}
        with self.lock:
            with self.db.atomic():
                if self.chats.get(new_chat_id) is None:
                    # Telegram only ever moves a group to a supergroup. Its numbers come along unchanged.
                    chats = self.chats.become_supergroup(old_chat_id, new_chat_id)
                else:
                    # The new id has numbers of its own: the old chat's alerts take the next ones, in the
                    # order they were set, so no number in the new chat means two alerts.
                    start = self.chats.next_number(new_chat_id)
                    renumbered = {
                        old: start + i for i, old in enumerate(self.rules.chat_numbers(old_chat_id))
                    }
                    if renumbered:
                        self.chats.numbers_given(new_chat_id, start + len(renumbered) - 1)
                    self._move_snooze(old_chat_id, new_chat_id, renumbered)
                    chats = self.chats.forget(old_chat_id)
                rules = self.rules.move_on_disk(old_chat_id, new_chat_id, renumbered)
                outbox = self.outbox.move_chat(old_chat_id, new_chat_id)
            # After the commit: a failed transaction leaves memory as it was, matching the disk.
            self.rules.move_in_memory(old_chat_id, new_chat_id, renumbered)
        return {"chats": chats, "rules": rules, "outbox": outbox}

    def _move_snooze(self, old_chat_id: int, new_chat_id: int, renumbered: dict[int, int]) -> None:
        """The old chat's snooze, under the new id and numbers: its paused alerts still resume when it
        ends (joined with a snooze the new chat has, until the later of the two ends)."""
        old, new = self.chats.snooze(old_chat_id), self.chats.snooze(new_chat_id)
        if old is None:
            return
        numbers = [renumbered.get(n, n) for n in old.numbers] + list(new.numbers if new else ())
        until = max(old.until, new.until) if new else old.until
        self.chats.set_snooze(new_chat_id, until, numbers)

    def usage(self, day_start: datetime, day_end: datetime) -> Usage:
        """Counts for the operator: chats, active rules (a cross counts once) and alerts sent in the day."""
        chats, active_chats = self.chats.counts()
        rules, paused, chats_with_rules = self.rules.counts()
        return Usage(
            chats=chats,
            active_chats=active_chats,
            rules=rules,
            paused_rules=paused,
            chats_with_rules=chats_with_rules,
            alerts_sent=self.outbox.alerts_sent_between(day_start, day_end),
        )
