"""bot/cli.py, run as a real process: the `capgap` script with a controlled environment in tmp_path."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import DATA

SCRIPT = Path(sys.executable).parent / "capgap"
COMMAND = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "bot.cli"]
HEAVY = {"pandas", "yfinance", "matplotlib"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Each `ask` run on the shared history: the directory it ran in, and what it printed.
Answers = dict[str, tuple[Path, subprocess.CompletedProcess[str]]]


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    """Only what a process needs to start, plus the CAPGAP_* settings given: nothing from the developer."""
    env = {
        name: os.environ[name]
        for name in ("PATH", "HOME", "MPLCONFIGDIR", "SYSTEMROOT")
        if name in os.environ
    }
    env.update({"LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8", "CAPGAP_DB": str(tmp_path / "capgap.db")})
    env.update(settings)
    return env


def start(args: Sequence[str], tmp_path: Path, **settings: str) -> subprocess.Popen[str]:
    # cwd=tmp_path: no stray .env file is read unless a test writes one there.
    return subprocess.Popen(
        [*COMMAND, *args],
        cwd=tmp_path,
        env=environment(tmp_path, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def capgap(args: Sequence[str], tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return finish(start(args, tmp_path, **settings))


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("capgap: ")
    assert result.stdout == ""
    return lines[0]


def csv_closes(path: Path) -> dict[date, float]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            date.fromisoformat(row["date"]): float(row["close"])
            for row in csv.DictReader(handle)
            if row["close"].strip()
        }


def last_close_on_or_before(closes: dict[date, float], day: date) -> float:
    return closes[max(d for d in closes if d <= day)]


# --- help and imports -------------------------------------------------------------------------------


def test_help_lists_the_commands_without_importing_pandas_yfinance_or_matplotlib(tmp_path: Path) -> None:
    result = capgap(["--help"], tmp_path, PYTHONPROFILEIMPORTTIME="1")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s+run\s", result.stdout, re.M)
    assert re.search(r"^\s+ask\s", result.stdout, re.M)
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "bot.cli" in imported  # the profile did cover capgap itself
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []


# --- settings errors --------------------------------------------------------------------------------


def test_run_without_a_token_is_a_one_line_error_with_status_2(tmp_path: Path) -> None:
    line = assert_one_line_error(capgap(["run"], tmp_path))
    assert "CAPGAP_TELEGRAM_TOKEN" in line
    assert "not set" in line


def test_run_with_a_malformed_token_never_prints_it(tmp_path: Path) -> None:
    token = "123456789:leaky-but-too-short"
    result = capgap(["run"], tmp_path, CAPGAP_TELEGRAM_TOKEN=token)
    line = assert_one_line_error(result)
    assert "malformed" in line
    assert "leaky-but-too-short" not in result.stdout + result.stderr


def test_a_malformed_token_in_dotenv_is_read_and_never_printed(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        '# local settings\nexport CAPGAP_TELEGRAM_TOKEN="987654:from-dotenv-secret"\n'
    )
    result = capgap(["run"], tmp_path)
    assert "malformed" in assert_one_line_error(result)
    assert "from-dotenv-secret" not in result.stdout + result.stderr


def test_as_of_with_the_yahoo_market_is_a_one_line_error(tmp_path: Path) -> None:
    line = assert_one_line_error(capgap(["ask", "--as-of", "2024-01-18", "/standing"], tmp_path))
    assert "csv:DIR" in line


def test_a_bad_as_of_date_is_an_argparse_usage_error(tmp_path: Path) -> None:
    result = capgap(["ask", "--as-of", "2024-13-01", "/standing"], tmp_path)
    assert result.returncode == 2
    assert "not a date (YYYY-MM-DD): '2024-13-01'" in result.stderr
    assert "usage: capgap ask" in result.stderr
    assert "Traceback" not in result.stderr


def test_ask_with_text_that_is_no_command_explains_the_slash(tmp_path: Path) -> None:
    line = assert_one_line_error(capgap(["ask", "standing"], tmp_path, CAPGAP_MARKET=f"csv:{DATA}"))
    assert "/standing" in line
    assert "/help" in line


# --- answers from the real history ------------------------------------------------------------------


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Answers:
    """Three `capgap ask --as-of 2024-01-18` runs on the shared history, started together to save time."""
    asks = {"standing": ["/standing 10y"], "chart": ["/chart 1y"], "unknown": ["/nope"]}
    running = {}
    for name, text in asks.items():
        home = tmp_path_factory.mktemp(name)
        running[name] = (
            home,
            start(["ask", "--as-of", "2024-01-18", *text], home, CAPGAP_MARKET=f"csv:{shared_data}"),
        )
    return {name: (home, finish(process)) for name, (home, process) in running.items()}


def test_standing_10y_matches_the_csv(answers: Answers, shared_data: Path) -> None:
    home, result = answers["standing"]
    assert result.returncode == 0, result.stderr
    rut = csv_closes(shared_data / "RUT_daily.csv")
    spx = csv_closes(shared_data / "GSPC_daily.csv")
    # The stated convention: latest close vs the last close on or before the same date ten years earlier.
    rut_return = (
        last_close_on_or_before(rut, date(2024, 1, 18)) / last_close_on_or_before(rut, date(2014, 1, 18)) - 1
    )
    spx_return = (
        last_close_on_or_before(spx, date(2024, 1, 18)) / last_close_on_or_before(spx, date(2014, 1, 18)) - 1
    )

    row = re.search(r"^▸10Y\s+([+-][\d,.]+)%\s+([+-][\d,.]+)%\s+([+-][\d,.]+) pts$", result.stdout, re.M)
    assert row, result.stdout
    shown_rut, shown_spx, shown_gap = (float(g.replace(",", "")) for g in row.groups())
    assert abs(shown_rut - rut_return * 100) <= 0.005 + 1e-9
    assert abs(shown_spx - spx_return * 100) <= 0.005 + 1e-9
    assert abs(shown_gap - (rut_return - spx_return) * 100) <= 0.05 + 1e-9
    assert f"RUT {rut[date(2024, 1, 18)]:,.2f} (18 Jan 2024 close)" in result.stdout
    assert f"SPX {spx[date(2024, 1, 18)]:,.2f} (18 Jan 2024 close)" in result.stdout
    assert "<b>" not in result.stdout  # plain text for a terminal
    # An "as of" answer is computed in memory, never mixed into the configured cache file.
    assert not (home / "capgap.db").exists()


def test_chart_is_written_to_a_png_whose_path_is_printed(
    answers: Answers,
) -> None:
    home, result = answers["chart"]
    assert result.returncode == 0, result.stderr
    printed = re.search(r"^chart: (.+) \(([\d,]+) bytes\)$", result.stdout, re.M)
    assert printed, result.stdout
    path = Path(printed.group(1))
    path = path if path.is_absolute() else home / path  # written under the working directory by default
    assert path.is_file()
    assert path.suffix == ".png"
    content = path.read_bytes()
    assert content.startswith(PNG_MAGIC)
    assert len(content) == int(printed.group(2).replace(",", ""))
    width, height = int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
    assert width >= 600
    assert height >= 400


def test_an_unknown_command_gets_a_hint_to_help(
    answers: Answers,
) -> None:
    _, result = answers["unknown"]
    assert result.returncode == 0, result.stderr
    assert "I don't know /nope" in result.stdout
    assert "/help" in result.stdout
    assert "Traceback" not in result.stderr
