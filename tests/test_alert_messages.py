"""How texts are cut into Telegram-sized messages: alert blocks packed whole, an overlong text cut by the
one cutter (``fit_text``) into HTML that Telegram accepts — checked by the Bot API emulator's own parser."""

from __future__ import annotations

import re

import pytest

from alerts.messages import CUT_NOTE, MAX_MESSAGE, fit_text, pack
from testing.telegram.html import parse_html


def test_blocks_share_a_message_until_it_would_overflow_and_are_never_split() -> None:
    blocks = [f"🔔 <b>RUT above {3000 + i:,}</b>\n" + "x" * 300 for i in range(40)]
    messages = pack(blocks)
    assert len(messages) > 1
    assert all(len(m) <= MAX_MESSAGE for m in messages)
    assert "\n\n".join(messages) == "\n\n".join(blocks)  # every block, whole and in order


def test_a_single_small_block_is_one_message() -> None:
    assert pack(["🔔 one"]) == ["🔔 one"]


def test_a_text_that_fits_is_returned_as_it_is() -> None:
    text = "<b>RUT</b> 2,000 · <i>S&amp;P</i> 4,800"
    assert fit_text(text) is text


def pre_table(rows: int) -> str:
    """An answer shaped like /etf or /alerts at length: a title, a <pre> table, a footer."""
    lines = [f"#{i:<4} {'S&amp;P' if i % 2 else 'RUT'} above {3000 + i:>7,}  &lt;5%" for i in range(rows)]
    return "<b>Your alerts</b>\n<pre>" + "\n".join(lines) + "</pre>\n<i>Source: replay</i>"


def test_a_long_pre_table_is_cut_at_a_row_end_and_its_pre_closed() -> None:
    text = pre_table(400)
    assert len(text) > MAX_MESSAGE
    fitted = fit_text(text)
    assert len(fitted) <= MAX_MESSAGE
    parse_html(fitted)  # raises, in Telegram's words, on a tag or an entity left broken
    assert fitted.endswith("</pre>" + CUT_NOTE)
    body = fitted.removesuffix("</pre>" + CUT_NOTE)
    assert text.startswith(body + "\n")  # whole rows only, cut where a row ends
    assert fitted.count("<pre>") == fitted.count("</pre>") == 1
    kept_rows = body.count("\n")
    assert kept_rows > 50  # most of the message is still the table


def test_a_long_line_is_never_cut_inside_a_tag_or_an_entity() -> None:
    text = "<b>" + " ".join(f'<a href="https://example.com/{i}">S&amp;P {i}</a>' for i in range(300)) + "</b>"
    for limit in range(200, 400):
        fitted = fit_text(text, limit)
        assert len(fitted) <= limit
        parse_html(fitted)
        assert re.search(r"&(?!amp;|lt;|gt;)", fitted) is None


@pytest.mark.parametrize("limit", range(120, 1200, 37))
def test_any_cut_of_nested_tags_is_html_telegram_accepts(limit: int) -> None:
    text = (
        "<b>capgap</b>\n<blockquote><i>note &amp; more</i>\n"
        + "\n".join(f"<u>row {i}</u> <code>{i * 7}</code> &lt;" for i in range(60))
        + "</blockquote>\n"
        + pre_table(30)
    )
    fitted = fit_text(text, limit)
    assert len(fitted) <= limit
    assert fitted.endswith(CUT_NOTE)
    parse_html(fitted)


def test_a_block_too_long_for_a_message_is_cut_by_the_same_cutter() -> None:
    (message,) = pack([pre_table(400)])
    assert message == fit_text(pre_table(400))
