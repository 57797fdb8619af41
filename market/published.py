"""Valuation gaps others have published, bundled with their citations: reference points beside capgap's
own readings, never mixed into them.

``data/published_gaps.csv`` holds one reading per row: the measure (``pb`` price-to-book, ``pe``
price-to-earnings), the date the figures speak for (the publication date where the source gives no other),
either both multiples (``small`` and ``large``) or only their ratio (``relative``, small ÷ large), and who
said it, where, a link and in what terms. Methodologies differ (index constituents, averages, fund holdings,
forward or trailing earnings): ``basis`` says which, and an answer shows it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).with_name("data") / "published_gaps.csv"
MEASURES = {"pb": "price-to-book", "pe": "price-to-earnings"}


@dataclass(frozen=True)
class PublishedGap:
    measure: str  # "pb" or "pe"
    as_of: date
    relative: float  # small-cap multiple ÷ large-cap multiple
    small: float | None  # the multiples, where the source gives them
    large: float | None
    who: str
    where: str
    url: str
    basis: str

    @property
    def gap(self) -> float:
        """As ``market.metrics.valuation_gap``: 1 − small ÷ large (0.56 = small caps at a 56% discount)."""
        return 1.0 - self.relative


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def parse(path: Path = DATA) -> tuple[PublishedGap, ...]:
    """The readings of ``path``, oldest first; ValueError naming the line for any row that does not hold."""
    readings = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                measure = row["measure"].strip()
                if measure not in MEASURES:
                    raise ValueError(f"measure {measure!r} is not one of {', '.join(MEASURES)}")
                small, large, relative = (
                    _number(row["small"]),
                    _number(row["large"]),
                    _number(row["relative"]),
                )
                if (small is None) != (large is None):
                    raise ValueError("give both multiples or neither")
                if small is not None and large is not None:
                    if relative is not None:
                        raise ValueError("give the multiples or their ratio, not both")
                    if not (small > 0 and large > 0):
                        raise ValueError("multiples must be positive")
                    relative = small / large
                if relative is None or not (math.isfinite(relative) and 0 < relative < 5):
                    raise ValueError(f"relative multiple {relative!r} is not plausible")
                for field in ("who", "where", "url", "basis"):
                    if not row[field].strip():
                        raise ValueError(f"{field} is empty: every reading carries its citation")
                readings.append(
                    PublishedGap(
                        measure=measure,
                        as_of=date.fromisoformat(row["as_of"].strip()),
                        relative=relative,
                        small=small,
                        large=large,
                        who=row["who"].strip(),
                        where=row["where"].strip(),
                        url=row["url"].strip(),
                        basis=row["basis"].strip(),
                    )
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path.name} line {line}: {exc}") from exc
    return tuple(sorted(readings, key=lambda reading: (reading.as_of, reading.measure)))


@lru_cache(maxsize=1)
def published() -> tuple[PublishedGap, ...]:
    """The bundled readings (read once)."""
    return parse()


def of(measure: str) -> tuple[PublishedGap, ...]:
    """The bundled readings of one measure, oldest first."""
    return tuple(reading for reading in published() if reading.measure == measure)
