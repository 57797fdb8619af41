"""How alert texts are cut into Telegram-sized messages."""

from __future__ import annotations

from alerts.messages import MAX_MESSAGE, pack


def test_blocks_share_a_message_until_it_would_overflow_and_are_never_split() -> None:
    blocks = [f"🔔 <b>RUT above {3000 + i:,}</b>\n" + "x" * 300 for i in range(40)]
    messages = pack(blocks)
    assert len(messages) > 1
    assert all(len(m) <= MAX_MESSAGE for m in messages)
    assert "\n\n".join(messages) == "\n\n".join(blocks)  # every block, whole and in order


def test_a_single_small_block_is_one_message() -> None:
    assert pack(["🔔 one"]) == ["🔔 one"]
