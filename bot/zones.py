"""A chat's clock in words: the time zone it names and the digest time it keeps.

/tz and /digest (``bot/commands/alerts.py``) parse and describe these here: a zone name in any case
(``america/new_york`` is America/New_York), ``UTC``, and the closest names for a typo.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from zoneinfo import available_timezones

from alerts.store import DEFAULT_ZONE
from bot.answers import UsageError
from bot.format import esc

ZONES_LINK = "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones"
SUGGESTIONS = 3


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Every IANA area/location name the system knows, by its lower-case spelling, plus UTC.

    Bare legacy names (``EST5EDT``, ``Cuba``) are left out: they are aliases a newcomer should not
    pick, and "UTC" is the one bare name people mean.
    """
    names = {name.lower(): name for name in available_timezones() if "/" in name}
    names["utc"] = "UTC"
    return names


def _cities() -> dict[str, list[str]]:
    """'berlin' -> ['Europe/Berlin']: the last part of each name, spaces allowed for underscores."""
    by_city: dict[str, list[str]] = {}
    for name in _zones().values():
        by_city.setdefault(name.rsplit("/", 1)[-1].lower(), []).append(name)
    return by_city


def closest_zones(text: str, limit: int = SUGGESTIONS) -> list[str]:
    """The zone names closest to ``text``, best first: by city ('berlin'), then by spelling."""
    key = text.strip().lower().replace(" ", "_")
    found = sorted(_cities().get(key.rsplit("/", 1)[-1], []))
    zones = _zones()
    for near in difflib.get_close_matches(key, list(zones), n=limit, cutoff=0.6):
        if zones[near] not in found:
            found.append(zones[near])
    if len(found) < limit:
        for city in difflib.get_close_matches(key.rsplit("/", 1)[-1], list(_cities()), n=limit, cutoff=0.75):
            found += [name for name in sorted(_cities()[city]) if name not in found]
    return found[:limit]


def parse_zone(text: str) -> str:
    """The IANA name ``text`` means, spelled as the tz database spells it. Raises UsageError naming the
    closest names when it is none."""
    name = text.strip()
    found = _zones().get(name.lower())
    if found is not None:
        return found
    near = closest_zones(name)
    hint = (
        " Did you mean " + " or ".join(f"<code>{esc(z)}</code>" for z in near) + "?"
        if near
        else " Use an IANA name such as <code>Europe/Berlin</code> or <code>America/New_York</code>."
    )
    raise UsageError(
        f"“{esc(name[:40])}” is not a time zone name.{hint} "
        f'All the names: <a href="{ZONES_LINK}">the list</a>.'
    )


def digest_setting(zone: str | None, digest_time: str | None) -> str:
    """What /digest alone answers: the chat's current digest setting and how to change it."""
    where = esc(zone or DEFAULT_ZONE)
    if digest_time is None:
        return (
            f"📰 The daily digest is off. <code>/digest 22:30</code> sends it every trading day at that time "
            f"({where}; /tz changes the zone)."
        )
    return (
        f"📰 The daily digest comes at {esc(digest_time)} ({where}) after each US close. "
        "<code>/digest HH:MM</code> moves it; <code>/digest off</code> stops it; /tz changes the zone."
    )
