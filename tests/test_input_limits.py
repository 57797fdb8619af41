"""Hostile input through the command core: only finite numbers in sane ranges, bounded lengths, and a
specific reply for each, with nothing stored."""

from __future__ import annotations

import pytest

from bot import answers, core
from bot.format import plain
from bot.services import Services

CHAT = 31337


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/target 1e309", "is not an index level"),
        ("/target " + "9" * 400, "at most 1,000,000"),
        ("/target nan", "is not an index level"),
        ("/target -0", "is not an index level"),
        ("/target 0", "must be above 0"),
        ("/etf nan", "is not an amount of money"),
        ("/etf " + "9" * 400, "at most $1,000,000,000,000"),
        ("/etf 10000 inf", "at most 60 years"),
        ("/etf 10000 nan", "at most 60 years"),
        ("/etf 10000 -5", "more than 0"),
        ("/alert rut above 1e309", "is not a number"),
        ("/alert ratio below -inf", "not a finite number"),
        ("/alert rut above " + "1" * 300, "characters long"),
        ("/delete 9999999999", "Usage: /delete ID"),
        ("/pause 1 2", "Usage: /pause ID"),
        ("/digest 25:00", "is not a time"),
        ("/tz ../../etc/passwd", "is not a time zone name"),
        ("/tz " + "A/" * 200, "is not a time zone name"),
        ("/standing 9999-99-99", "I don't know the period"),
        ("/standing " + "x" * 1000, "I don't know the period"),
    ],
)
async def test_hostile_arguments_get_a_specific_reply_and_change_nothing(
    csv_services: Services, text: str, says: str
) -> None:
    name, args = answers.parse_command_line(text)
    answer = await core.answer(answers.Request(name, args, csv_services, chat_id=CHAT, user_id=CHAT))
    assert says in plain(answer.text)
    assert len(answer.text) < 1000  # the echo of the input is cut short
    stored = csv_services.alerts.db.execute(
        "SELECT (SELECT COUNT(*) FROM rules WHERE chat_id = ?) + (SELECT COUNT(*) FROM chats WHERE chat_id = ?)",
        [CHAT, CHAT],
    ).fetchone()[0]
    assert stored == 0
