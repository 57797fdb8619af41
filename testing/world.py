"""The offline world tests and benchmarks share."""

from __future__ import annotations

from pathlib import Path
from typing import Final

# The real market history (``<SYMBOL>_daily.csv`` files and ``funds.csv``, see its SOURCES.md), kept beside
# the checkout rather than in it.
SHARED_DATA: Final = Path(__file__).resolve().parents[2] / "shared" / "data"
