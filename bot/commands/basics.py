"""/start and /help: what capgap is and every command with an example.

/help lists the registry, which holds this module: the package (``bot/commands/__init__.py``) hands the
list in, so no family imports the registry.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from bot.answers import Answer, Command, Request
from bot.format import esc

CONVENTIONS = (
    "<b>How the numbers work</b>\n"
    "• An N-period return compares the latest close with the last close on or before the same calendar "
    "date N periods earlier; YTD compares with the last close of the previous year; MAX starts at the first "
    "close both indices share.\n"
    "• Index returns are price returns (no dividends). Highs are closing highs.\n"
    f"• RUT−SPX is the Russell 2000's return minus the {esc('S&P 500')}'s, in percentage points.\n"
    "• ETF costs assume 7% growth a year before fees, each year's fee taken from the balance at the year's "
    "end: the first year's fee is what a one-year holding costs.\n"
    "• Valuation gap = 1 − (small-cap ÷ large-cap multiple of the funds' holdings), on P/B and on P/E, the "
    "mean of IWM/IVV and VTWO/VOO; a reading their twins (IWM–VTWO, IVV–VOO) contradict has no figure. "
    "Published readings are others' figures on their own basis. <code>/chart gap</code> draws it."
)


def start(request: Request) -> Answer:
    request.services.alerts.chats.register(request.chat_id, request.chat_type)
    return Answer(
        "👋 <b>capgap</b> follows the small-cap vs large-cap story: the Russell 2000 against the "
        f"{esc('S&P 500')}, "
        "what the ETFs that track them cost, and how wide the valuation gap is.\n\n"
        "Try <code>/standing</code> for where both indices stand, <code>/target 3000</code> for how far the "
        "Russell is from 3,000, <code>/etf</code> for fund costs, or <code>/chart 10y</code> for a picture.\n"
        "Send /help for every command."
    )


def help_answer(request: Request, commands: Sequence[Command]) -> Answer:
    """Every command of ``commands`` the asker may use, with its usage and examples, then the conventions."""
    lines = ["<b>capgap commands</b>", ""]
    for command in commands:
        if command.admin_only and not request.services.is_admin(request.user_id):
            continue
        examples = ", ".join(f"<code>{esc(e)}</code>" for e in command.examples)
        lines.append(f"<b>{esc(command.usage)}</b> — {esc(command.summary)}. e.g. {examples}")
    lines += ["", CONVENTIONS]
    return Answer("\n".join(lines))


def closest_command(name: str, commands: Sequence[Command]) -> str | None:
    """The command of ``commands`` a mistyped name most likely meant ('stading' -> 'standing'), among
    those everyone sees, or None when nothing is close."""
    names = [c.name for c in commands if not c.admin_only]
    found = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
    return found[0] if found else None


START = Command("start", "Welcome and what capgap does", "/start", ("/start",), start)
# /help itself is the registry's (bot/commands/__init__.py): it lists every family, this one included.
COMMANDS = (START,)
BUTTONS = ()
