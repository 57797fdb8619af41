"""Alert numbers are each chat's own and never reused, so a number, typed or on an old button, only ever
names the alert it was given to; the /alerts list pages, names what it deletes, and says whose it is.

End-to-end through the real Application and the Bot API emulator (``DirectBot``), except the migration,
which is checked on a real SQLite file written as the previous schema left it.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.rules import parse_rule
from alerts.store import AlertStore
from alerts.store.schema import MIGRATIONS
from bot.format import plain
from database.connection import open_database
from database.migrations import migrate
from tests.conftest import DirectBot

CHAT = 4242
GROUP = -100777
ADMIN = 12
NOW = datetime(2024, 1, 18, 21, 30, tzinfo=UTC)


def sent(calls: list[Any]) -> Any:
    """The one message the bot sent or edited in answer."""
    (call,) = [c for c in calls if c.method in ("sendMessage", "editMessageText")]
    return call


def text_of(calls: list[Any]) -> str:
    return plain(sent(calls).params["text"])


def buttons(call: Any) -> dict[str, str]:
    """Label -> callback data of the message a call sent or edited (as Telegram says it now stands)."""
    markup = call.result.get("reply_markup") or {}
    return {b["text"]: b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row}


def stored(bot: DirectBot, chat_id: int) -> list[tuple[int, str]]:
    """(number, rule text) of the chat's stored rule rows, in creation order."""
    return bot.services.alerts.db.execute(
        "SELECT group_id, spec FROM rules WHERE chat_id = ? ORDER BY rule_id", [chat_id]
    ).fetchall()


async def say(bot: DirectBot, text: str, chat_id: int = CHAT, **kwargs: Any) -> list[Any]:
    return await bot.message(chat_id, text, **kwargs)


# --- numbers -----------------------------------------------------------------------------------------


async def test_an_old_delete_button_never_deletes_the_newer_alert_that_took_its_place(
    direct_bot: DirectBot,
) -> None:
    """The issue's steps: #N, its 🗑 button, /delete N, a new alert; the old button must not delete it."""
    await say(direct_bot, "/alert rut cross 2000")
    assert "Alert #2 set" in text_of(await say(direct_bot, "/alert spx above 5000"))
    listing = sent(await say(direct_bot, "/alerts"))
    old_button = buttons(listing)["🗑 #2"]
    assert "Deleted #2: SPX above 5,000" in text_of(await say(direct_bot, "/delete 2"))

    assert "Alert #3 set: RUT below 1,500" in text_of(await say(direct_bot, "/alert rut below 1500"))
    _, calls = await direct_bot.press(CHAT, listing.result["message_id"], old_button)

    answer = text_of(calls)
    assert "Alert #2 was deleted before: nothing to delete" in answer
    assert "#3 RUT below 1,500" in answer  # the list as it now stands, the new alert still on it
    assert [n for n, _ in stored(direct_bot, CHAT)] == [1, 1, 3]
    assert "Alert #2 was deleted before: nothing to delete" in text_of(await say(direct_bot, "/delete 2"))
    assert "Nothing to pause: alert #2 was deleted before" in text_of(await say(direct_bot, "/pause 2"))
    assert "Nothing to resume: alert #2 was deleted before" in text_of(await say(direct_bot, "/resume 2"))
    assert "You have no alert #4: nothing to delete" in text_of(await say(direct_bot, "/delete 4"))
    assert [n for n, _ in stored(direct_bot, CHAT)] == [1, 1, 3]


async def test_each_chat_numbers_its_own_alerts_from_one_and_a_cross_takes_one_number(
    direct_bot: DirectBot,
) -> None:
    direct_bot.emulator.set_admins(GROUP, [ADMIN])
    await say(direct_bot, "/alert rut cross 2000")
    assert "Alert #2 set" in text_of(await say(direct_bot, "/alert spx above 5000"))
    first_in_group = await say(
        direct_bot, "/alert rut above 2500", GROUP, chat_type="supergroup", user_id=ADMIN
    )
    assert "Alert #1 set" in text_of(first_in_group)

    listing = text_of(await say(direct_bot, "/alerts"))
    assert "#1 RUT cross 2,000" in listing and "#2 SPX above 5,000" in listing
    assert [n for n, _ in stored(direct_bot, CHAT)] == [1, 1, 2]
    assert [n for n, _ in stored(direct_bot, GROUP)] == [1]


async def test_pause_and_resume_name_the_alert_by_its_number(direct_bot: DirectBot) -> None:
    await say(direct_bot, "/alert rut cross 2000")
    await say(direct_bot, "/alert spx above 5000")
    assert "Paused alert #2: SPX above 5,000 · live · band 1%" in text_of(await say(direct_bot, "/pause 2"))
    assert "Nothing to pause: alert #2 is paused already" in text_of(await say(direct_bot, "/pause 2"))
    rows = direct_bot.services.alerts.db.execute(
        "SELECT group_id, paused FROM rules WHERE chat_id = ? ORDER BY rule_id", [CHAT]
    ).fetchall()
    assert rows == [(1, 0), (1, 0), (2, 1)]
    assert "Resumed alert #2: SPX above 5,000" in text_of(await say(direct_bot, "/resume 2"))


async def test_after_forget_an_old_button_does_not_hit_the_new_alert_with_the_same_number(
    direct_bot: DirectBot,
) -> None:
    """/forget keeps nothing about the chat, its counter neither, so #1 comes back; the old list's button
    names the old #1's stored row, which no new alert ever gets."""
    await say(direct_bot, "/alert rut above 2500")
    listing = sent(await say(direct_bot, "/alerts"))
    old_button = buttons(listing)["🗑 #1"]
    menu = sent(await say(direct_bot, "/forget"))
    await direct_bot.press(CHAT, menu.result["message_id"], buttons(menu)["Yes, delete everything"])
    assert "Alert #1 set: SPX above 6,000" in text_of(await say(direct_bot, "/alert spx above 6000"))

    _, calls = await direct_bot.press(CHAT, listing.result["message_id"], old_button)

    assert "That button is for an alert that no longer exists: nothing was deleted" in text_of(calls)
    assert stored(direct_bot, CHAT) == [(1, "SPX above 6,000 · live · band 1%")]


@pytest.mark.parametrize(
    "data",
    ["delete:1 1 1", "delete:1 2 1", "delete:0 1 1", "delete:1 1", "delete:1 1 1 1", "delete:x", "delete:"],
)
async def test_a_forged_delete_button_deletes_nothing_it_does_not_name(
    direct_bot: DirectBot, data: str
) -> None:
    """Another chat's button data (its #1, its row key 1), a wrong row key, junk: this chat's #1 stays."""
    await say(direct_bot, "/alert rut above 2500", 9999)  # rows 1 and up belong to another chat
    await say(direct_bot, "/alert spx above 6000")
    listing = sent(await say(direct_bot, "/alerts"))
    assert buttons(listing)["🗑 #1"] == "delete:1 2 1"
    if data == "delete:1 2 1":
        data = "delete:1 3 1"  # this chat's #1 with a row key that is not its own
    _, calls = await direct_bot.press(CHAT, listing.result["message_id"], data, forged=True)
    assert "nothing was deleted" in text_of(calls) or "no longer valid" in text_of(calls)
    assert stored(direct_bot, CHAT) == [(1, "SPX above 6,000 · live · band 1%")]
    assert len(stored(direct_bot, 9999)) == 1


async def test_a_button_from_before_numbers_were_per_chat_deletes_nothing(direct_bot: DirectBot) -> None:
    """Lists sent before the change carry ``del:<old id>``, which may now be another alert's number."""
    await say(direct_bot, "/alert spx above 6000")
    menu = sent(await say(direct_bot, "/standing"))
    _, calls = await direct_bot.press(CHAT, menu.result["message_id"], "del:1", forged=True)
    assert "That button is from an older list and no longer valid: nothing was deleted" in text_of(calls)
    assert len(stored(direct_bot, CHAT)) == 1


# --- duplicates ----------------------------------------------------------------------------------------


async def test_the_same_rule_twice_is_refused_and_changes_nothing(direct_bot: DirectBot) -> None:
    await say(direct_bot, "/alert rut cross 2000")
    await say(direct_bot, "/alert rut above 2500")
    before = stored(direct_bot, CHAT)
    for text in (
        "/alert rut above 2500",
        "/alert RUT above 2,500 live band 1%",
        "/alert russell 2000 above 2500",
    ):
        assert "You already have #2: RUT above 2,500 · live · band 1%. Nothing changed" in text_of(
            await say(direct_bot, text)
        )
    assert stored(direct_bot, CHAT) == before
    # Another rule on the same level is no duplicate, nor the same rule in another chat.
    assert "Alert #3 set" in text_of(await say(direct_bot, "/alert rut above 2500 close"))
    assert "Alert #1 set" in text_of(await say(direct_bot, "/alert rut above 2500", 9999))
    # Once deleted, the rule may be set again; it gets a new number.
    await say(direct_bot, "/delete 2")
    assert "Alert #4 set: RUT above 2,500" in text_of(await say(direct_bot, "/alert rut above 2500"))


async def test_pressing_the_same_preset_twice_keeps_one_alert(direct_bot: DirectBot) -> None:
    """Two /alert guides, the same preset pressed on each: the second press is told which alert it is."""
    answers = []
    for _ in range(2):
        guide = sent(await say(direct_bot, "/alert"))
        message_id = guide.result["message_id"]
        for data in ("alert:rut", "alert:rut above"):
            await direct_bot.press(CHAT, message_id, data)
        _, calls = await direct_bot.press(CHAT, message_id, "alert:rut above 2000")
        answers.append(text_of(calls))
    assert "Alert #1 set: RUT above 2,000" in answers[0]
    assert "You already have #1: RUT above 2,000 · live · band 1%. Nothing changed" in answers[1]
    assert len(stored(direct_bot, CHAT)) == 1


# --- the list ------------------------------------------------------------------------------------------


async def test_alerts_pages_ten_at_a_time_and_the_arrows_edit_the_list_in_place(
    direct_bot: DirectBot,
) -> None:
    store = direct_bot.services.alerts
    for n in range(23):
        store.rules.add(CHAT, parse_rule(f"rut above {3000 + n}"), None, NOW)
    first = sent(await say(direct_bot, "/alerts"))
    message_id = first.result["message_id"]
    page = plain(first.params["text"])
    assert "Your alerts (23) · page 1 of 3" in page
    assert "#1 RUT above 3,000" in page and "#10 RUT above 3,009" in page and "#11 " not in page
    assert [k for k in buttons(first) if k.startswith("🗑")] == [f"🗑 #{n}" for n in range(1, 11)]
    assert "◀" not in buttons(first)

    _, calls = await direct_bot.press(CHAT, message_id, buttons(first)["▶"])
    second = sent(calls)
    assert second.method == "editMessageText" and second.result["message_id"] == message_id
    assert "page 2 of 3" in text_of(calls) and "#11 RUT above 3,010" in text_of(calls)
    assert {"◀", "▶"} <= set(buttons(second))

    _, calls = await direct_bot.press(CHAT, message_id, buttons(second)["▶"])
    third = sent(calls)
    assert "page 3 of 3" in text_of(calls) and "#23 RUT above 3,022" in text_of(calls)
    assert "▶" not in buttons(third) and [k for k in buttons(third) if k.startswith("🗑")] == [
        "🗑 #21",
        "🗑 #22",
        "🗑 #23",
    ]
    assert all(len(data.encode()) <= 64 for data in buttons(third).values())

    # Deleting from the last page stays there; when it empties, the page before is shown.
    for number in (21, 22):
        _, calls = await direct_bot.press(CHAT, message_id, buttons(sent(calls))[f"🗑 #{number}"])
        assert f"Deleted #{number}: RUT above {3000 + number - 1:,}" in text_of(calls)
        assert "page 3 of 3" in text_of(calls)
    _, calls = await direct_bot.press(CHAT, message_id, buttons(sent(calls))["🗑 #23"])
    assert "Deleted #23" in text_of(calls) and "Your alerts (20) · page 2 of 2" in text_of(calls)
    assert store.rules.count_groups(CHAT) == 20

    _, calls = await direct_bot.press(CHAT, message_id, buttons(sent(calls))["◀"])
    assert "page 1 of 2" in text_of(calls)
    _, calls = await direct_bot.press(CHAT, message_id, "alerts:999x", forged=True)
    assert "no longer valid" in text_of(calls)


async def test_a_group_sees_this_groups_alerts(direct_bot: DirectBot) -> None:
    direct_bot.emulator.set_admins(GROUP, [ADMIN])
    group = {"chat_type": "supergroup", "user_id": ADMIN}
    assert "This group has no alerts" in text_of(await say(direct_bot, "/alerts", GROUP, **group))
    await say(direct_bot, "/alert rut above 2500", GROUP, **group)
    assert "This group's alerts (1)" in text_of(await say(direct_bot, "/alerts", GROUP, **group))
    assert "This group already has #1" in text_of(
        await say(direct_bot, "/alert rut above 2500", GROUP, **group)
    )
    assert "This group has no alert #5" in text_of(await say(direct_bot, "/delete 5", GROUP, **group))
    await say(direct_bot, "/alert rut above 2500")
    assert "Your alerts (1)" in text_of(await say(direct_bot, "/alerts"))


# --- the migration ---------------------------------------------------------------------------------------


def old_database(path: Path) -> None:
    """A database as the previous schema left it: numbers were the first rule_id, shared by every chat."""
    db = open_database(path)
    migrate(db, MIGRATIONS[:2])
    chats = [(1, "private"), (2, "private"), (-3, "supergroup")]
    db.conn.executemany(
        "INSERT INTO chats (chat_id, type, zone, active, created_at) VALUES (?, ?, 'America/New_York', 1, ?)",
        [(c, t, NOW.isoformat()) for c, t in chats],
    )
    # (rule_id, chat, group id, spec, kind, status): chat 1 set #1 (a cross), chat 2 set #3, chat 1 set #4
    # (deleted since, so absent) and #5, chat -3 set #6 (a once rule that fired) and #7.
    rows = [
        (1, 1, 1, "RUT cross 2,000 · live · band 1%", "above", "active"),
        (2, 1, 1, "RUT cross 2,000 · live · band 1%", "below", "active"),
        (3, 2, 3, "SPX above 5,000 · live · band 1%", "above", "active"),
        (5, 1, 5, "RUT above 2,500 · live · band 1%", "above", "active"),
        (6, -3, 6, "RUT above 2,100 · live · once · band 1%", "above", "done"),
        (7, -3, 7, "RUT below 1,800 · live · band 1%", "below", "active"),
    ]
    db.conn.executemany(
        "INSERT INTO rules (rule_id, chat_id, group_id, spec, key, kind, level, band, mode, once, paused, "
        "status, armed, last_fired_session, last_session, created_at) "
        "VALUES (?, ?, ?, ?, '^RUT', ?, 2000, 0.01, 'live', 0, 0, ?, 1, -1, -1, ?)",
        [(*row, NOW.isoformat()) for row in rows],
    )
    db.conn.commit()
    db.close()


def numbers_on_disk(path: Path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT rule_id, chat_id, group_id FROM rules ORDER BY rule_id").fetchall()


def test_the_migration_keeps_the_numbers_chats_were_told_and_never_gives_one_again(tmp_path: Path) -> None:
    """Old pushes say "/delete 5": after the migration 5 is still that alert, and no chat that existed then
    is ever given a number up to the largest handed out before (7 here), deleted #4 included."""
    path = tmp_path / "old.db"
    old_database(path)

    store = AlertStore(open_database(path))

    assert numbers_on_disk(path) == [(1, 1, 1), (2, 1, 1), (3, 2, 3), (5, 1, 5), (6, -3, 6), (7, -3, 7)]
    assert [(g.number, g.spec.split(" · ")[0]) for g in store.rules.groups(1)] == [
        (1, "RUT cross 2,000"),
        (5, "RUT above 2,500"),
    ]
    assert [g.number for g in store.rules.groups(-3)] == [7]  # #6 fired once and is finished
    assert store.rules.delete_group(2, 1) is None  # chat 2 never had a #1 of its own
    # Each existing chat's counter starts after the largest number given out; a new chat starts at #1;
    # row keys never go back below the largest stored.
    assert store.rules.add(1, parse_rule("spx above 6000"), None, NOW)[0] == 8
    assert store.rules.add(-3, parse_rule("spx above 6000"), None, NOW)[0] == 8
    assert store.rules.add(2, parse_rule("spx above 6000"), None, NOW)[0] == 8
    assert store.rules.add(99, parse_rule("spx above 6000"), None, NOW)[0] == 1
    assert [r for r, _, _ in numbers_on_disk(path)][-4:] == [8, 9, 10, 11]
    store.db.close()

    # Opening it again (a restart) migrates nothing and renumbers nothing.
    before = numbers_on_disk(path)
    again = AlertStore(open_database(path))
    assert migrate(again.db, MIGRATIONS) == []
    assert numbers_on_disk(path) == before
    assert again.rules.add(1, parse_rule("spx above 7000"), None, NOW)[0] == 9
    again.db.close()


def test_a_deleted_newest_alert_gives_neither_its_number_nor_its_row_key_to_the_next(tmp_path: Path) -> None:
    store = AlertStore(open_database(tmp_path / "a.db"))
    store.rules.add(1, parse_rule("rut cross 2000"), None, NOW)
    number, _ = store.rules.add(1, parse_rule("spx above 5000"), None, NOW)
    assert store.rules.delete_group(1, number) == "SPX above 5,000 · live · band 1%"
    assert store.rules.delete_group(1, number) is None

    assert store.rules.add(1, parse_rule("rut below 1500"), None, NOW)[0] == 3
    assert [g.rule_id for g in store.rules.groups(1)] == [1, 4]  # row 3 went with #2 and stays unused
    store.forget_chat(1)
    assert store.rules.add(1, parse_rule("rut below 1500"), None, NOW)[0] == 1
    assert [g.rule_id for g in store.rules.groups(1)] == [5]
    store.db.close()


def test_moving_into_a_chat_with_alerts_of_its_own_gives_the_moved_ones_new_numbers(tmp_path: Path) -> None:
    """A supergroup used before its old group's move was noticed: both have a #1; after the move the old
    group's alerts come after the supergroup's, in their order, and the counter follows."""
    store = AlertStore(open_database(tmp_path / "m.db"))
    old, new = -4001, -1004001
    store.rules.add(old, parse_rule("rut cross 2000"), None, NOW)
    store.rules.add(old, parse_rule("rut above 2500"), None, NOW)
    store.rules.add(new, parse_rule("spx above 6000"), None, NOW)

    store.move_chat(old, new)

    assert [(g.number, g.spec.split(" · ")[0]) for g in store.rules.groups(new)] == [
        (1, "SPX above 6,000"),
        (2, "RUT cross 2,000"),
        (3, "RUT above 2,500"),
    ]
    assert sorted(store.rules.active["group_id"].tolist()) == [1, 2, 2, 3]
    assert store.rules.add(new, parse_rule("spx above 7000"), None, NOW)[0] == 4
    store.db.close()


def test_an_alert_message_tells_the_chats_own_number_to_delete(csv_services: Any, clock: Any) -> None:
    """Another chat's rules take the first rows; this chat's #2 fires at the 19 Jan close (RUT 1,950.35)
    and its message says /delete 2, the number /alerts shows."""
    from tests.test_alert_engine import JAN_17, JAN_19, advance_market, refresh, set_rules, texts_to

    set_rules(csv_services, 9999, ["rut cross 1800", "spx above 6000"], at_close_of=JAN_17)
    numbers = set_rules(csv_services, CHAT, ["spx above 6000", "rut above 1940 close"], at_close_of=JAN_17)
    assert numbers == [1, 2]
    advance_market(csv_services, clock, JAN_19)
    assert refresh(csv_services).fired == 1
    (text,) = texts_to(csv_services, CHAT)
    assert "RUT above 1,940" in text and "/delete 2 to stop it" in text
