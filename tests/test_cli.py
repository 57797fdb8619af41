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

from testing.world import SHARED_DATA, TEST_TOKEN

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
        # PYTHONPATH: the source tree under test, when it is not the installed one.
        for name in ("PATH", "HOME", "MPLCONFIGDIR", "SYSTEMROOT", "PYTHONPATH")
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
    line = assert_one_line_error(capgap(["ask", "standing"], tmp_path, CAPGAP_MARKET=f"csv:{SHARED_DATA}"))
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


# --- what the command line promises ------------------------------------------------------------------


def assert_one_failure_line(result: subprocess.CompletedProcess[str]) -> str:
    """Exit status 1 and one line on stderr, no traceback (what an operator's log shows)."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and "Unclosed" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("capgap: ")
    return lines[0]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_version_is_the_package_version(tmp_path: Path) -> None:
    import tomllib

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    result = capgap(["--version"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"capgap {declared}\n", "")


def table_rows(db: Path, table: str) -> int:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_ask_honours_capgap_as_of_and_never_writes_the_live_database(
    tmp_path: Path, history_db: Path, shared_data: Path
) -> None:
    """CAPGAP_AS_OF sets the day for `ask` as for `run`; an /alert asked on the command line is answered
    from a throwaway copy and leaves the bot's database as it was."""
    import shutil

    live = tmp_path / "capgap.db"
    shutil.copyfile(history_db, live)
    before = (table_rows(live, "closes"), table_rows(live, "refreshes"))
    settings = {"CAPGAP_MARKET": f"csv:{shared_data}", "CAPGAP_AS_OF": "2024-01-18"}

    standing = capgap(["ask", "/standing"], tmp_path, **settings)
    assert standing.returncode == 0, standing.stderr
    rut = csv_closes(shared_data / "RUT_daily.csv")[date(2024, 1, 18)]
    assert f"RUT {rut:,.2f} (18 Jan 2024 close)" in standing.stdout

    alert = capgap(["ask", "--as-of", "2024-01-18", "/alert rut above 3000"], tmp_path, **settings)
    assert alert.returncode == 0, alert.stderr
    without_date = capgap(["ask", "/alert rut above 3000"], tmp_path, CAPGAP_MARKET=f"csv:{shared_data}")
    assert without_date.returncode == 0, without_date.stderr
    assert "Alert #1 set" in alert.stdout and "Alert #1 set" in without_date.stdout
    assert (table_rows(live, "rules"), table_rows(live, "chats")) == (0, 0)
    assert (table_rows(live, "closes"), table_rows(live, "refreshes")) == before


def test_ask_without_a_database_creates_none(tmp_path: Path, shared_data: Path) -> None:
    result = capgap(["ask", "/standing 1y"], tmp_path, CAPGAP_MARKET=f"csv:{shared_data}")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("given", "setting"),
    [("1980-01-01", "--as-of"), ("2999-01-01", "--as-of"), ("1980-01-01", "CAPGAP_AS_OF")],
)
def test_an_as_of_date_capgap_cannot_answer_for_says_which_dates_it_can(
    tmp_path: Path, shared_data: Path, given: str, setting: str
) -> None:
    args, settings = ["ask", "/standing"], {"CAPGAP_MARKET": f"csv:{shared_data}"}
    if setting == "--as-of":
        args[1:1] = ["--as-of", given]
    else:
        settings["CAPGAP_AS_OF"] = given
    line = assert_one_line_error(capgap(args, tmp_path, **settings))
    side = "before" if given < "2000" else "after"
    assert line == (
        f"capgap: {setting} {given} is {side} the dates capgap can answer for: "
        f"give a day from 1990-01-02 to today ({date.today().isoformat()})"
    )


def test_a_reader_that_goes_away_ends_ask_quietly(tmp_path: Path, shared_data: Path) -> None:
    """`capgap ask … | head -1`: the pipe closes before the answer is written."""
    process = start(
        ["ask", "--as-of", "2024-01-18", "/standing 10y"], tmp_path, CAPGAP_MARKET=f"csv:{shared_data}"
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the child has loaded anything, let alone printed
    with process.stderr:
        stderr = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert stderr == ""


def test_healthcheck_in_polling_mode_says_how_to_turn_the_endpoint_on(tmp_path: Path) -> None:
    # A loopback address nothing else listens on, so the default port answers nobody.
    line = assert_one_failure_line(capgap(["healthcheck"], tmp_path, CAPGAP_LISTEN="127.0.0.3"))
    assert line.startswith("capgap: no answer from http://127.0.0.3:8081/healthz: ")
    assert "with long polling the bot serves /healthz only when CAPGAP_HEALTH_PORT is set" in line


def run_with_retries(tmp_path: Path, retries: int, **settings: str) -> subprocess.Popen[str]:
    """`capgap run` with fewer tries at start than the default, so that giving up takes seconds."""
    code = f"import sys, bot.cli as cli; cli.START_RETRIES = {retries}; sys.exit(cli.main(['run']))"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment(tmp_path, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def test_telegram_unreachable_at_start_is_one_line_after_the_retries(
    tmp_path: Path, shared_data: Path
) -> None:
    api = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = finish(
        run_with_retries(
            tmp_path,
            2,
            CAPGAP_TELEGRAM_TOKEN=TEST_TOKEN,
            CAPGAP_TELEGRAM_API=api,
            CAPGAP_MARKET=f"csv:{shared_data}",
            CAPGAP_AS_OF="2024-01-18",
        )
    )
    line = assert_one_failure_line(result)
    assert line.startswith(f"capgap: could not reach the Telegram Bot API at {api} in 3 tries (")
    assert line.endswith("check the network and CAPGAP_TELEGRAM_API, then start again")


async def test_a_bot_api_that_fails_at_first_is_tried_again(tmp_path: Path, shared_data: Path) -> None:
    import asyncio
    import signal

    from testing.telegram import TelegramEmulator

    async with TelegramEmulator() as emu:
        emu.fail("getMe", 502, times=2)  # a gateway still coming up
        process = run_with_retries(
            tmp_path,
            3,
            CAPGAP_TELEGRAM_TOKEN=TEST_TOKEN,
            CAPGAP_TELEGRAM_API=emu.root,
            CAPGAP_MARKET=f"csv:{shared_data}",
            CAPGAP_AS_OF="2024-01-18",
        )
        try:
            await emu.wait_for(method="setMyCommands", timeout=60)
            emu.user_message(77, "/start")  # answered: the bot is up, past its start-up
            await emu.wait_for(chat_id=77, method="sendMessage", timeout=30)
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
            assert process.returncode == 0, stderr
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert [call.status for call in emu.calls if call.method == "getMe"] == [502, 502, 200]


def test_a_damaged_database_at_start_is_one_line_naming_it_and_the_way_back(tmp_path: Path) -> None:
    db = tmp_path / "capgap.db"
    db.write_bytes(b"this is no database " * 300)
    line = assert_one_failure_line(capgap(["run"], tmp_path, CAPGAP_TELEGRAM_TOKEN=TEST_TOKEN))
    assert line == (
        f"capgap: cannot use the database {db} (file is not a database): it looks damaged: put a backup "
        "in its place with `capgap restore BACKUP` (the damaged file is kept beside it)"
    )


def test_a_full_disk_at_start_is_one_line_naming_the_database(tmp_path: Path) -> None:
    """A disk that takes no more bytes, as the process's file size limit makes it (ulimit -f)."""
    db = tmp_path / "capgap.db"
    result = subprocess.run(
        ["sh", "-c", 'ulimit -f 16 && exec "$@"', "sh", *COMMAND, "run"],
        cwd=tmp_path,
        env=environment(tmp_path, CAPGAP_TELEGRAM_TOKEN=TEST_TOKEN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = assert_one_failure_line(result)
    assert line.startswith(f"capgap: cannot use the database {db} (")
    assert "make room on its disk" in line and "capgap restore BACKUP" in line


async def test_an_update_that_cannot_be_read_is_logged_by_size_not_by_its_text(
    tmp_path: Path, shared_data: Path
) -> None:
    """Long polling: python-telegram-bot's CRITICAL line for an update it cannot parse keeps its place
    in the log but says what came (size, fields), not what the user wrote."""
    import asyncio
    import json

    from testing.telegram import TelegramEmulator

    log_path = tmp_path / "bot.log"
    async with TelegramEmulator() as emu:
        settings = {
            "CAPGAP_TELEGRAM_TOKEN": TEST_TOKEN,
            "CAPGAP_TELEGRAM_API": emu.root,
            "CAPGAP_MARKET": f"csv:{shared_data}",
            "CAPGAP_AS_OF": "2024-01-18",
            "CAPGAP_LOG_FORMAT": "json",
        }
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *COMMAND, "run", cwd=tmp_path, env=environment(tmp_path, **settings),
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        try:
            await emu.wait_for(method="setMyCommands", timeout=60)
            bad = emu.queue_update({"message": {"text": "my secret plan 4321"}})  # no chat, no date
            bad_size = len(json.dumps([bad]).encode())
            # It is fetched (and refused) again and again: twice is enough to have been logged once.
            await emu.wait_for(lambda call: bool(call.result), method="getUpdates", count=2, timeout=30)
        finally:
            process.kill()  # a bot that cannot read an update cannot confirm it either: no clean stop
            await process.wait()

    text = log_path.read_text()
    assert "my secret plan" not in text and "4321" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    described = [line for line in lines if "cannot be read" in line["message"]]
    assert described and described[0]["level"] == "CRITICAL"
    assert described[0]["message"] == (
        f"Telegram sent updates that cannot be read ({bad_size} bytes, 1 update(s) with fields message, "
        "update_id; KeyError)"
    )
    assert all("exc" not in line for line in described)


def test_a_replay_from_before_the_calendar_says_which_dates_it_can(tmp_path: Path, shared_data: Path) -> None:
    result = capgap(
        ["replay", "--from", "1980-01-01", "--to", "1985-01-01", "rut above 100 close"],
        tmp_path,
        CAPGAP_MARKET=f"csv:{shared_data}",
    )
    assert assert_one_line_error(result) == (
        "capgap: --from 1980-01-01 is before the dates capgap can answer for: "
        f"give a day from 1990-01-02 to today ({date.today().isoformat()})"
    )


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_a_stop_while_telegram_is_tried_again_ends_the_tries(
    tmp_path: Path, shared_data: Path, mode: str
) -> None:
    """SIGTERM (systemctl stop) during the start-up retries stops the bot then, not half a minute later."""
    import asyncio
    import signal

    from testing.telegram import TelegramEmulator

    async with TelegramEmulator() as emu:
        emu.fail("getMe", 502, times=None)  # never up
        port = free_port()
        settings = {
            "CAPGAP_TELEGRAM_TOKEN": TEST_TOKEN,
            "CAPGAP_TELEGRAM_API": emu.root,
            "CAPGAP_MARKET": f"csv:{shared_data}",
            "CAPGAP_AS_OF": "2024-01-18",
            "CAPGAP_HEALTH_PORT": "off",
        }
        if mode == "webhook":
            settings.update(CAPGAP_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook", CAPGAP_WEBHOOK_PORT=str(port))
        process = await asyncio.create_subprocess_exec(
            *COMMAND, "run", cwd=tmp_path, env=environment(tmp_path, **settings),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await emu.wait_for(method="getMe", ok=False, timeout=60)
            process.send_signal(signal.SIGTERM)
            # Well inside the ~30 s the tries would take.
            _, stderr = await asyncio.wait_for(process.communicate(), 15)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr
    assert b"Traceback" not in stderr and b"Unclosed" not in stderr
