"""How numbers, dates and footers look in replies: Telegram HTML, thousands separators, explicit signs."""

from __future__ import annotations

import html
import math
import re
from datetime import date, datetime

# The one escape for text sent as Telegram HTML, shared with the alert messages (``alerts`` cannot import
# ``bot``, so it lives there).
from alerts.messages import esc as esc
from market.calendar import NEW_YORK

DASH = "–"  # shown where a figure is unavailable


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def number(value: float | None, digits: int = 2) -> str:
    return f"{value:,.{digits}f}" if _finite(value) else DASH


def money(value: float | None, digits: int = 0) -> str:
    if not _finite(value):
        return DASH
    assert value is not None
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{digits}f}"


def big_money(value: float | None) -> str:
    """$62.0B, $850.3M: fund sizes at a glance."""
    if not _finite(value):
        return DASH
    assert value is not None
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= size:
            return f"${value / size:,.1f}{suffix}"
    return money(value)


def pct(fraction: float | None, digits: int = 2, signed: bool = True) -> str:
    """A fraction as a percentage with an explicit sign: 0.0523 -> '+5.23%'."""
    if not _finite(fraction):
        return DASH
    assert fraction is not None
    return f"{fraction * 100:+,.{digits}f}%" if signed else f"{fraction * 100:,.{digits}f}%"


def points(value: float | None, digits: int = 1) -> str:
    """Percentage points with an explicit sign: -100.0 -> '-100.0 pts'."""
    return f"{value:+,.{digits}f} pts" if _finite(value) else DASH


def day(value: date | datetime) -> str:
    """'18 Jan 2024': unambiguous on both sides of the Atlantic."""
    return f"{value.day} {value:%b %Y}"


def clock_time(moment: datetime) -> str:
    local = moment.astimezone(NEW_YORK)
    return f"{day(local)} {local:%H:%M} ET"


def plain(text: str) -> str:
    """The HTML reply as terminal text: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"</?[a-z][^>]*>", "", text))
