"""bot/logs.py: plain or JSON lines, secrets redacted everywhere (tracebacks too), chatty libraries held back,
and what a handled command leaves in the log."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import QUIET_LOGGERS, RedactSecrets, setup_logging
from testing.world import TEST_TOKEN
from tests.conftest import DirectBot

SECRET = "webhook-secret-0123456789abcdef"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """capgap's logging set up into a buffer; everything it changed is put back afterwards."""
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in [*QUIET_LOGGERS, ""]}
    stream = io.StringIO()
    yield stream
    for handler in [h for h in root.handlers if h.get_name() == "capgap"]:
        root.removeHandler(handler)
    for handler in root.handlers:
        for redact in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(redact)
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def boom() -> None:
    raise ConnectionError(f"POST https://api.telegram.org/bot{TEST_TOKEN}/sendMessage failed")


def test_json_lines_carry_time_level_logger_message_and_the_chat(captured: io.StringIO) -> None:
    setup_logging("INFO", [TEST_TOKEN], "json", stream=captured)
    logging.getLogger("bot.handlers").info(
        "chat %s: /%s", 1001, "standing", extra={"chat_id": 1001, "command": "standing"}
    )
    (line,) = captured.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "INFO" and record["logger"] == "bot.handlers"
    assert record["message"] == "chat 1001: /standing"
    assert (record["chat_id"], record["command"]) == (1001, "standing")
    assert record["time"].endswith("+00:00")


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_secrets_are_redacted_from_messages_and_tracebacks(captured: io.StringIO, log_format: str) -> None:
    setup_logging("INFO", [TEST_TOKEN, SECRET], log_format, stream=captured)
    log = logging.getLogger("bot.transport")
    log.warning("calling %s with %s", f"https://api.telegram.org/bot{TEST_TOKEN}/getMe", SECRET)
    try:
        boom()
    except ConnectionError:
        log.exception("send failed")
    text = captured.getvalue()
    assert TEST_TOKEN not in text and SECRET not in text and TEST_TOKEN.split(":")[1] not in text
    assert "bot***/getMe" in text and "bot***/sendMessage failed" in text
    assert "Traceback" in text and "ConnectionError" in text
    if log_format == "json":
        lines = [json.loads(line) for line in text.splitlines()]
        assert "ConnectionError" in lines[1]["exc"]


def test_at_debug_the_libraries_that_log_urls_and_messages_are_held_back(captured: io.StringIO) -> None:
    setup_logging("DEBUG", [], stream=captured)
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("httpx").level == logging.WARNING  # request URLs carry the token
    assert logging.getLogger("telegram").level == logging.INFO  # its DEBUG lines carry users' messages
    logging.getLogger("telegram.ext.Application").debug("Processing update {'text': 'my secret plan'}")
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot123:abc/getMe")
    logging.getLogger("bot.jobs").debug("refresh due")
    assert captured.getvalue().count("\n") == 1 and "refresh due" in captured.getvalue()


def test_a_second_set_up_replaces_the_first(captured: io.StringIO) -> None:
    setup_logging("INFO", [TEST_TOKEN], stream=captured)
    setup_logging("WARNING", [TEST_TOKEN], "json", stream=captured)
    assert len([h for h in logging.getLogger().handlers if h.get_name() == "capgap"]) == 1
    assert logging.getLogger("telegram").level == logging.WARNING


async def test_a_handled_command_logs_its_chat_and_name_and_nothing_the_user_wrote(
    direct_bot: DirectBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await direct_bot.message(2024, "/alert rut above 3141 once")
    (line,) = [r for r in caplog.records if r.name == "bot.handlers"]
    assert line.getMessage() == "chat 2024: /alert"
    assert (line.chat_id, line.command) == (2024, "alert")  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "3141" in r.getMessage() or "rut above" in r.getMessage()]
