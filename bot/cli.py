"""The ``capgap`` command line: run the bot, ask it one question, replay alerts over history.

Imports stay inside the subcommands so ``capgap --help`` answers without loading pandas or yfinance.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Config

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="capgap",
        description="capgap: Russell 2000 vs S&P 500, ETF costs and the valuation gap, in Telegram.",
        epilog="Settings come from CAPGAP_* environment variables or a .env file; see the README.",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run the Telegram bot (long polling, or --webhook URL)",
        description="Run the Telegram bot: long polling by default, or behind a webhook.",
    )
    run.add_argument(
        "--webhook",
        metavar="URL",
        help="receive updates at this https URL instead of polling (overrides CAPGAP_WEBHOOK_URL); "
        "the server listens on CAPGAP_LISTEN:CAPGAP_WEBHOOK_PORT at the URL's path",
    )

    ask = sub.add_parser(
        "ask",
        help='print the answer to one command, e.g. capgap ask "/standing 10y"',
        description="Print what a chat would receive for one command.",
    )
    ask.add_argument("text", help='the command and its arguments, e.g. "/etf 25000 20"')
    ask.add_argument(
        "--as-of",
        type=_date,
        metavar="DATE",
        help="answer as at that date's close (needs CAPGAP_MARKET=csv:DIR)",
    )
    ask.add_argument("--html", action="store_true", help="print the Telegram HTML instead of plain text")
    ask.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="where a chart is written")

    replay = sub.add_parser(
        "replay",
        help="print the alerts rules would have sent over history, e.g. capgap replay --from 2024-01-01 "
        '--to 2024-12-31 "rut above 2000 close"',
        description="Step the real alert evaluation through the history at daily closes "
        "(needs CAPGAP_MARKET=csv:DIR). One line per alert, starting with its ISO date.",
    )
    replay.add_argument("--from", dest="start", type=_date, required=True, metavar="DATE")
    replay.add_argument("--to", dest="end", type=_date, required=True, metavar="DATE")
    replay.add_argument("rules", nargs="+", metavar="RULE", help='e.g. "rut above 2000 close"')

    backup = sub.add_parser(
        "backup",
        help="copy the database to PATH while the bot runs (SQLite online backup)",
        description="Write a consistent copy of CAPGAP_DB to PATH (a file, or a directory to put a dated "
        "file in), even while the bot is running.",
    )
    backup.add_argument("path", metavar="PATH", help="a file, or a directory (an existing one, or PATH/)")
    restore = sub.add_parser(
        "restore",
        help="replace the database with the backup at PATH (the bot must be stopped)",
        description="Check the backup at PATH and put it in place of CAPGAP_DB; the current database is "
        "kept beside it. Refuses while a capgap bot holds the database.",
    )
    restore.add_argument("path", type=Path, metavar="PATH")
    sub.add_parser(
        "healthcheck",
        help="ask the running bot's /healthz; exit 0 when healthy (for a container HEALTHCHECK)",
        description="Print the running bot's /healthz report; exit status 0 when healthy, 1 otherwise.",
    )
    return top


def fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"capgap: {message}", file=sys.stderr)
    return status


def load() -> Config:
    from bot.config import environment_with_dotenv, load_config

    return load_config(environment_with_dotenv())


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    import dataclasses

    from bot.config import webhook_url

    token = config.require_token()  # before any heavy import: a missing token fails at once
    if args.webhook:
        config = dataclasses.replace(config, webhook_url=webhook_url(args.webhook, "--webhook"))

    from bot.app import build_app, serve, webhook_secret
    from bot.database import hold
    from bot.logs import setup_logging
    from bot.services import build_services

    secret = webhook_secret(config) if config.webhook_url else ""
    setup_logging(config.log_level, [token.reveal(), secret], config.log_format)
    with hold(config.db_path):  # one bot per database; `capgap restore` waits for it to stop
        services = build_services(config, as_of=config.as_of)
        application = build_app(config, services, redact=(secret,) if secret else ())
        serve(application, config, secret)
    return 0


def cmd_ask(config: Config, args: argparse.Namespace) -> int:
    import asyncio

    from bot import core
    from bot.format import plain
    from bot.logs import setup_logging
    from bot.services import build_services

    setup_logging("WARNING")
    try:
        name, arguments = core.parse_command_line(args.text)
    except core.UsageError as exc:
        return fail(str(exc))
    if core.find(name) is None:  # no need to load any market data to say so
        print(plain(core.unknown(name).text))
        return 0
    # An "as of" answer is computed from scratch in memory, so it never mixes with the live cache.
    services = build_services(config, as_of=args.as_of, db_path=":memory:" if args.as_of else None)
    try:
        services.market.ensure_loaded()
        request = core.Request(name, arguments, services, chat_id=0, user_id=0)
        answer = asyncio.run(core.answer(request))
    finally:
        services.close()
    print(answer.text if args.html else plain(answer.text))
    if answer.keyboard:
        print("  ".join(f"[{button.label}]" for row in answer.keyboard for button in row))
    if answer.photo is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / answer.photo_name
        path.write_bytes(answer.photo)
        print(f"chart: {path} ({len(answer.photo):,} bytes)")
    return 0


def cmd_replay(config: Config, args: argparse.Namespace) -> int:
    from alerts.replay import replay
    from alerts.rules import RuleError, parse_rule
    from market.csv_source import CsvSource
    from market.instruments import SYMBOLS

    if config.csv_dir is None:
        return fail("replay needs CAPGAP_MARKET=csv:DIR (it steps through stored history)")
    if args.end < args.start:
        return fail("--to must not be before --from")
    specs = []
    for text in args.rules:
        try:
            specs.append(parse_rule(text))
        except RuleError as exc:
            return fail(f"bad rule {text!r}: {exc}")
    from bot.provenance import held_line
    from market.plausibility import screen

    # The same guard the bot's refresh applies: a replay must not fire on a value the bot would not judge.
    screened = screen(CsvSource(config.csv_dir, as_of=args.end).fetch(SYMBOLS).closes)
    for value in screened.held:
        print(f"capgap: {held_line(value)}", file=sys.stderr)
    closes = screened.closes
    try:
        fired = replay(specs, closes, args.start, args.end)
    except ValueError as exc:
        return fail(str(exc))
    for alert in fired:
        print(alert.line())
    print(f"{len(fired)} alert(s) from {len(specs)} rule(s), {args.start} to {args.end}", file=sys.stderr)
    return 0


def cmd_backup(config: Config, args: argparse.Namespace) -> int:
    from bot.database import backup

    target = Path(args.path)
    if args.path.endswith(("/", os.sep)):  # a directory meant, perhaps not there yet (the first nightly run)
        target.mkdir(parents=True, exist_ok=True)
    copied = backup(config.db_path, target)
    rows = ", ".join(f"{name} {count:,}" for name, count in copied.tables.items())
    print(f"backed up {config.db_path} to {copied.path} ({copied.bytes:,} bytes; {rows})")
    return 0


def cmd_restore(config: Config, args: argparse.Namespace) -> int:
    from bot.database import restore

    restored, kept = restore(args.path, config.db_path)
    rows = ", ".join(f"{name} {count:,}" for name, count in restored.tables.items())
    print(f"restored {args.path} to {config.db_path} ({rows})")
    if kept is not None:
        print(f"the database it replaced is kept as {kept}")
    return 0


def cmd_healthcheck(config: Config) -> int:
    import urllib.error
    import urllib.request

    from bot.config import DEFAULT_HEALTH_PORT

    if config.health_port == "off":
        return fail("the health endpoint is off (CAPGAP_HEALTH_PORT=off)", EXIT_FAILURE)
    port = (
        config.health_port
        if isinstance(config.health_port, int) and config.health_port
        else DEFAULT_HEALTH_PORT
    )
    # A server listening on every address answers on loopback too.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.listen, config.listen)
    url = f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:  # 503 arrives as an error, with the report as its body
        status, body = exc.code, exc.read()
    except OSError as exc:
        return fail(f"no answer from {url}: {getattr(exc, 'reason', exc)}", EXIT_FAILURE)
    print(body.decode("utf-8", errors="replace"))
    return 0 if status == 200 else EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    # PTB 22: RetryAfter.retry_after as a timedelta (the coming default), without a deprecation warning.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    args = parser().parse_args(argv)
    from bot.config import ConfigError
    from bot.database import DatabaseBusy, NotABackup
    from market.model import MarketUnavailable

    try:
        config = load()
        if args.command == "run":
            return cmd_run(config, args)
        if args.command == "ask":
            return cmd_ask(config, args)
        if args.command == "replay":
            return cmd_replay(config, args)
        if args.command == "backup":
            return cmd_backup(config, args)
        if args.command == "restore":
            return cmd_restore(config, args)
        if args.command == "healthcheck":
            return cmd_healthcheck(config)
    except ConfigError as exc:
        return fail(str(exc))
    except (DatabaseBusy, NotABackup, FileNotFoundError) as exc:
        return fail(str(exc), EXIT_FAILURE)
    except ValueError as exc:  # e.g. --as-of with the Yahoo source
        return fail(str(exc))
    except MarketUnavailable as exc:  # e.g. a history file with no usable row
        return fail(str(exc), EXIT_FAILURE)
    return fail(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
