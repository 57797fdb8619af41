"""Logging set-up: plain or JSON lines, and the token never reaches a log line.

What a line may carry: chat ids and command names. What it never carries: the bot token, the webhook
secret, and what users wrote beyond the command name. Libraries that log more than that at DEBUG are held
at a higher level whatever ``CAPGAP_LOG_LEVEL`` says (see ``QUIET_LOGGERS``), and every handler redacts
the secrets from the final text, tracebacks included, in case something slips through anyway.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

# Library loggers and the most they may say:
# - httpx/httpcore log every request URL at INFO/DEBUG, and Bot API URLs carry the token;
# - python-telegram-bot logs whole updates (users' messages) and API parameters at DEBUG;
# - APScheduler logs each job run at INFO, which drowns everything else every two seconds;
# - tornado's access log would print webhook paths, which some operators make secret.
QUIET_LOGGERS = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "telegram": logging.INFO,
    "apscheduler": logging.WARNING,
    "tornado.access": logging.WARNING,
}
# Fields of a record that a JSON line carries besides the message (set with ``extra=``).
CONTEXT_FIELDS = ("chat_id", "command")


class RedactSecrets(logging.Filter):
    """Replaces each secret with *** in the final message and traceback, whatever logger produced it."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            # Formatted here so the redacted text is what every formatter prints (they reuse exc_text).
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonLines(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, the context fields, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonLines()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def setup_logging(
    level: str = "INFO",
    secrets: list[str] | None = None,
    log_format: str = "plain",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log line to ``stream`` (default stderr) as ``log_format``; returns the handler.

    Replaces the handler of an earlier call, and leaves other handlers alone (pytest's, say); each of
    them gets the redaction filter too, so no handler prints a secret.
    """
    redact = RedactSecrets(secrets or [])
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.set_name("capgap")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "capgap"]:
        root.removeHandler(old)
    root.addHandler(handler)
    for each in root.handlers:
        for old_filter in [f for f in each.filters if isinstance(f, RedactSecrets)]:
            each.removeFilter(old_filter)
        each.addFilter(redact)
    root.setLevel(level)
    for name, most in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(most, logging.getLevelName(level)))
    return handler
