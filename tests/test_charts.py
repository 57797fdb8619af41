"""The comparison chart: a PNG Telegram accepts as a photo, for every period, from real and tiny frames."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.charts import render_comparison
from market.metrics import PERIODS
from testing.world import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TELEGRAM_PHOTO_BYTES = 10 * 1024 * 1024


@cache
def real_closes() -> pd.DataFrame:
    columns = {}
    for symbol in ("^RUT", "^GSPC"):
        frame = pd.read_csv(
            SHARED_DATA / f"{symbol.lstrip('^')}_daily.csv", parse_dates=["date"], index_col="date"
        )
        columns[symbol] = frame["close"]
    return pd.DataFrame(columns)


def tiny_closes(rows: int = 8) -> pd.DataFrame:
    days = pd.bdate_range("2024-01-01", periods=rows)
    rut = 2000 * np.cumprod(1 + np.resize([0.01, -0.02, 0.015, -0.005], rows))
    spx = 4700 * np.cumprod(1 + np.resize([-0.004, 0.006, -0.01, 0.012], rows))
    return pd.DataFrame({"^RUT": rut, "^GSPC": spx}, index=days)


def assert_telegram_photo(png: bytes) -> tuple[int, int]:
    """A PNG within the Bot API's sendPhoto limits (< 10 MB, width + height <= 10000, ratio <= 20)."""
    assert png.startswith(PNG_SIGNATURE)
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert len(png) < TELEGRAM_PHOTO_BYTES
    assert width + height <= 10_000
    assert max(width, height) / min(width, height) <= 20
    return width, height


def test_importing_the_module_does_not_import_matplotlib():
    """Commands that never draw do not pay for matplotlib's import."""
    probe = "import sys, bot.charts; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("period", [*PERIODS, "3m", "6m", date(2020, 3, 23)])
def test_renders_every_period_from_real_history_as_a_phone_sized_photo(period: str | date):
    started = time.perf_counter()
    png = render_comparison(real_closes(), period, source_note="Yahoo Finance")
    elapsed = time.perf_counter() - started
    print(f"render_comparison({period!s}) on real history: {elapsed * 1000:.0f} ms, {len(png) // 1024} KiB")
    assert assert_telegram_photo(png) == (1200, 1000)


def test_renders_as_of_a_past_date_exactly_as_if_later_closes_did_not_exist():
    """``end`` hides later closes from both panels (the drawdown's all-time high included)."""
    closes = real_closes()
    as_of = date(2024, 1, 18)
    truncated = closes.loc[closes.index <= pd.Timestamp(as_of)]
    assert render_comparison(closes, "1y", end=as_of) == render_comparison(truncated, "1y")


def test_renders_a_tiny_frame_including_two_rows_only():
    assert_telegram_photo(render_comparison(tiny_closes(), "1w", title="Small vs large", source_note="test"))
    assert_telegram_photo(render_comparison(tiny_closes(2), "1d"))


def test_renders_through_missing_closes():
    """A NaN in one index on a day is skipped, not drawn as a zero or a gap in the rebasing."""
    closes = tiny_closes(12)
    closes.iloc[3, 0] = np.nan
    closes.iloc[7, 1] = np.nan
    assert_telegram_photo(render_comparison(closes, "1w"))


def test_renders_the_same_bytes_from_worker_threads():
    """No shared pyplot state: renders in parallel threads match a render on the calling thread."""
    expected = render_comparison(tiny_closes(), "1w")
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: render_comparison(tiny_closes(), "1w"), range(3)))
    assert results == [expected] * 3


def test_a_period_longer_than_the_history_is_a_readable_error():
    with pytest.raises(
        ValueError, match="history both indices share starts on 1 Jan 2024: 10Y back from 10 Jan 2024"
    ):
        render_comparison(tiny_closes(), "10y")


def test_a_date_before_the_history_is_a_readable_error():
    with pytest.raises(ValueError, match="starts on 1 Jan 2024, after 1 Dec 2023: ask for 2024-01-01 or max"):
        render_comparison(tiny_closes(), date(2023, 12, 1))


def test_an_end_before_the_first_close_is_a_readable_error():
    with pytest.raises(ValueError, match="no day on which both"):
        render_comparison(tiny_closes(), "1d", end=date(2023, 12, 29))


def test_a_frame_without_both_indices_is_a_readable_error():
    with pytest.raises(ValueError, match=r"no closes for \^GSPC"):
        render_comparison(tiny_closes()[["^RUT"]], "1d")


def test_an_unknown_period_is_a_readable_error():
    with pytest.raises(ValueError, match="unknown period"):
        render_comparison(tiny_closes(), "fortnight")
