"""The ``capgap`` command line: run the bot, ask it one question, replay alerts over history.

Imports of what pulls in pandas, yfinance or python-telegram-bot (the market, the alerts, the app) stay
inside the subcommands, so ``capgap --help`` answers without loading them; the settings, the log setup
and the standard library are imported here.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import os
import sqlite3
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from bot.answers import Request, UsageError, after_command, parse_command_line
from bot.config import (
    DEFAULT_HEALTH_PORT,
    Config,
    ConfigError,
    environment_with_dotenv,
    load_config,
    webhook_url,
)
from bot.logs import setup_logging
from market.instruments import SYMBOLS
from market.model import MarketUnavailable

if TYPE_CHECKING:
    import pandas as pd

EXIT_FAILURE = 1
EXIT_USAGE = 2
# How often `capgap run` tries again to reach Telegram at start before it gives up, backing off as
# python-telegram-bot's bootstrap retries do (1.5, 2.25, 3.4 … s, at most 30 s: about half a minute in
# all). A supervisor (systemd's Restart=, a container's restart policy) takes over after that.
START_RETRIES = 6
# The first day an "as of" answer can be given for: market/calendar.py builds its NYSE calendar from it.
FIRST_AS_OF = date(1990, 1, 2)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def check_as_of(day: date | None, name: str) -> None:
    """Refuse, in words, a date capgap cannot answer for (before the NYSE calendar, or to come)."""
    if day is None:
        return
    today = date.today()
    if not FIRST_AS_OF <= day <= today:
        raise ConfigError(
            f"{name} {day.isoformat()} is {'before' if day < FIRST_AS_OF else 'after'} the dates capgap "
            f"can answer for: give a day from {FIRST_AS_OF.isoformat()} to today ({today.isoformat()})"
        )


def _version() -> str:
    try:
        return version("capgap")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``, looking the version up only when asked (``--help`` stays light)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"capgap {_version()}")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="capgap",
        description="capgap: Russell 2000 vs S&P 500, ETF costs and the valuation gap, in Telegram.",
        epilog="Settings come from CAPGAP_* environment variables or a .env file; see the README.",
    )
    top.add_argument("--version", action=_Version)
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
        description="Print what a chat would receive for one command. It never writes to CAPGAP_DB: it "
        "answers from a throwaway copy of it (from scratch with an as-of date), so an /alert or a setting "
        "asked here is forgotten when it ends, and a running bot is not disturbed.",
    )
    ask.add_argument("text", help='the command and its arguments, e.g. "/etf 25000 20"')
    ask.add_argument(
        "--as-of",
        type=_date,
        metavar="DATE",
        help="answer as at that date's close, from 1990-01-02 to today (needs CAPGAP_MARKET=csv:DIR); "
        "default: CAPGAP_AS_OF, as for `capgap run`",
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
        description="Write a consistent copy of CAPGAP_DB to PATH (a file, or an existing directory to put "
        "a dated file in), even while the bot is running. A directory that does not exist is refused, "
        "not created: make it first. The copy is readable by its owner only.",
    )
    backup.add_argument("path", metavar="PATH", help="a file, or an existing directory")
    restore = sub.add_parser(
        "restore",
        help="replace the database with the backup at PATH (the bot must be stopped)",
        description="Check the backup at PATH and put it in place of CAPGAP_DB (also when the current "
        "one is damaged); the current database is kept beside it under a name of its own. Refuses while "
        "a capgap bot holds the database.",
    )
    restore.add_argument("path", type=Path, metavar="PATH")
    sub.add_parser(
        "healthcheck",
        help="ask the running bot's /healthz; exit 0 when healthy (for a container HEALTHCHECK)",
        description="Print the running bot's /healthz report; exit status 0 when healthy, 1 otherwise. "
        "The bot serves /healthz with a webhook, and with long polling only when CAPGAP_HEALTH_PORT is set; "
        "give this command the same CAPGAP_HEALTH_PORT and CAPGAP_LISTEN as the bot.",
    )
    return top


class BootstrapFailureReported(logging.Filter):
    """Drops python-telegram-bot's traceback for a start that gave up reaching Telegram: `capgap run`
    says so itself, in one line. Its other records (a retry, a failure while running) pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        giving_up = record.module == "networkloop" and record.levelno >= logging.ERROR
        first = record.args[0] if isinstance(record.args, tuple) and record.args else record.msg
        return not (giving_up and "Bootstrap" in str(first))


class UnreadableUpdatesDescribed(logging.Filter):
    """python-telegram-bot logs updates it cannot parse at CRITICAL with their whole content (what users
    wrote) and a traceback whose text may quote it; this keeps the line and says only the size and kind
    of what came, and the kind of error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.CRITICAL:
            return True
        error = record.exc_info[1] if record.exc_info else None
        what = f"{type(error).__name__}" if error is not None else "no error given"
        if record.name in ("telegram.Bot", "telegram.ext.ExtBot") and "Received data was" in str(record.msg):
            from bot.webhook import describe

            data = record.args[0] if isinstance(record.args, tuple) and record.args else None
            body = json.dumps(data, default=str).encode()
            record.msg, record.args = (
                "Telegram sent updates that cannot be read (%s; %s)",
                (describe(body), what),
            )
        elif record.name == "telegram.ext.Updater" and "Received data was" in str(record.msg):
            record.msg, record.args = "updates from Telegram were not processed (%s)", (what,)
        else:
            return True
        record.exc_info, record.exc_text = None, None
        return True


def fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"capgap: {message}", file=sys.stderr)
    return status


def load() -> Config:
    return load_config(environment_with_dotenv())


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    token = config.require_token()  # before any heavy import: a missing token fails at once
    if args.webhook:
        config = dataclasses.replace(config, webhook_url=webhook_url(args.webhook, "--webhook"))
    check_as_of(config.as_of, "CAPGAP_AS_OF")

    from telegram.error import InvalidToken, NetworkError, RetryAfter

    from bot.app import build_app, serve, webhook_secret
    from bot.services import build_services
    from database.files import hold

    secret = webhook_secret(config) if config.webhook_url else ""
    setup_logging(config.log_level, [token.reveal(), secret], config.log_format)
    logging.getLogger("telegram.ext").addFilter(BootstrapFailureReported())
    for name in ("telegram.Bot", "telegram.ext.ExtBot", "telegram.ext.Updater"):
        logging.getLogger(name).addFilter(UnreadableUpdatesDescribed())
    with hold(config.db_path):  # one bot per database; `capgap restore` waits for it to stop
        services = build_services(config, as_of=config.as_of)
        application = build_app(config, services, redact=(secret,) if secret else ())
        try:
            serve(application, config, secret, bootstrap_retries=START_RETRIES)
        except InvalidToken:
            return fail(
                f"Telegram refused the token in CAPGAP_TELEGRAM_TOKEN (at {config.api_root}); "
                "ask @BotFather for the current one",
                EXIT_FAILURE,
            )
        except (NetworkError, RetryAfter) as exc:  # TimedOut is a NetworkError
            return fail(
                f"could not reach the Telegram Bot API at {config.api_root} in {START_RETRIES + 1} tries "
                f"({exc}); check the network and CAPGAP_TELEGRAM_API, then start again",
                EXIT_FAILURE,
            )
    return 0


def cmd_ask(config: Config, args: argparse.Namespace) -> int:
    from bot import core
    from bot.commands import find
    from bot.format import plain
    from bot.services import build_services
    from database.files import throwaway_copy

    setup_logging("WARNING")
    try:
        name, arguments = parse_command_line(args.text)
    except UsageError as exc:
        return fail(str(exc))
    as_of = args.as_of or config.as_of
    check_as_of(as_of, "--as-of" if args.as_of else "CAPGAP_AS_OF")
    if find(name) is None:  # no need to load any market data to say so
        print(plain(core.unknown(name).text))
        return 0
    # Never the live database: an "as of" answer is computed from scratch in memory, so it never mixes
    # with the live cache; any other from a throwaway copy of it, so what the command writes (an alert
    # rule, a setting for "chat 0") goes with the copy, and a running bot is not disturbed.
    with tempfile.TemporaryDirectory(prefix="capgap-ask-") as scratch:
        if as_of is not None:
            db_path: Path | str = ":memory:"
        else:
            db_path = throwaway_copy(config.db_path, Path(scratch))
        services = build_services(config, as_of=as_of, db_path=db_path)
        # The libraries' objects live until the process ends: out of the collector's sight, neither the
        # collections during the answer nor the ones at exit walk them (~70 ms of an 0.8 s command).
        gc.freeze()
        try:
            services.market.ensure_loaded()
            request = Request(name, arguments, services, chat_id=0, user_id=0, text=after_command(args.text))
            answer = asyncio.run(core.answer(request))
        finally:
            services.close()
    gc.freeze()
    print(answer.text if args.html else plain(answer.text))
    if answer.keyboard:
        # A share button hands the answer to Telegram's inline mode: nothing a terminal can do.
        print("  ".join(f"[{b.label}]" for row in answer.keyboard for b in row if not b.share))
    if answer.photo is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / answer.photo_name
        path.write_bytes(answer.photo)
        print(f"chart: {path} ({len(answer.photo):,} bytes)")
    return 0


def cmd_replay(config: Config, args: argparse.Namespace) -> int:
    from alerts.observations import GAP_KEY, GAP_MEASURES, PEGAP_KEY
    from alerts.replay import replay
    from alerts.rules import RuleError, parse_rule
    from market.csv_source import CsvSource
    from market.valuation import MEASURES

    rule_words = {GAP_KEY: "gap", PEGAP_KEY: "pegap"}

    if config.csv_dir is None:
        return fail("replay needs CAPGAP_MARKET=csv:DIR (it steps through stored history)")
    if args.end < args.start:
        return fail("--to must not be before --from")
    check_as_of(args.start, "--from")
    check_as_of(args.end, "--to")
    specs = []
    for text in args.rules:
        try:
            specs.append(parse_rule(text))
        except RuleError as exc:
            return fail(f"bad rule {text!r}: {exc}")
    from bot.provenance import held_line
    from market.plausibility import screen, screen_adjusted

    # The same guard the bot's refresh applies: a replay must not fire on a value the bot would not judge.
    data = CsvSource(config.csv_dir, as_of=args.end).fetch(SYMBOLS)
    screened = screen(data.closes)
    for value in screened.held:
        print(f"capgap: {held_line(value)}", file=sys.stderr)
    closes = screened.closes
    adjusted, _ = screen_adjusted(closes, data.adjusted)  # what total-return leads are judged on
    # Gap rules are judged on funds.csv's as_of rows, as the bot judges them on its recorded snapshots;
    # with no trusted reading to judge them on, the replay says so rather than print "0 alert(s)".
    gaps = replay_gaps(config.csv_dir, args.end, sorted({s.key for s in specs} & GAP_MEASURES.keys()))
    for key, history in gaps.items():
        word, (column, label) = rule_words[key], MEASURES[GAP_MEASURES[key]]
        trusted = 0 if history is None else int(history.notna().sum())
        if not trusted:
            return fail(
                f"{word} rules cannot be replayed: {config.csv_dir / 'funds.csv'} has no trusted {label} "
                f"reading up to {args.end} ({column} of IWM and IVV, or of VTWO and VOO, on an as_of row)"
            )
        assert history is not None
        contradicted = len(history) - trusted
        print(
            f"capgap: {word} rules judged on {trusted} {label} reading(s) of funds.csv, "
            f"{history.index[0].date()} to {history.index[-1].date()}"
            + (
                f"; {contradicted} contradicted (twins apart or an unconfirmed jump), not judged"
                if contradicted
                else ""
            ),
            file=sys.stderr,
        )
    try:
        fired = replay(
            specs,
            closes,
            args.start,
            args.end,
            gap=gaps.get(GAP_KEY),
            pegap=gaps.get(PEGAP_KEY),
            adjusted=adjusted,
        )
    except ValueError as exc:
        return fail(str(exc))
    for alert in fired:
        print(alert.line())
    print(f"{len(fired)} alert(s) from {len(specs)} rule(s), {args.start} to {args.end}", file=sys.stderr)
    return 0


def replay_gaps(directory: Path, end: date, keys: Sequence[str]) -> dict[str, pd.Series | None]:
    """The valuation-gap histories (``alerts.engine.gap_series``) a replay judges the gap rules on
    ``keys`` on: the ``as_of`` rows of ``directory``/funds.csv up to ``end``, through the guard the bot's
    fund refresh applies, read as the bot reads the snapshots it records."""
    import pandas as pd

    from alerts.engine import gap_series
    from market.csv_source import CsvSource
    from market.model import FundFacts
    from market.plausibility import plausible_fund
    from market.valuation import PAIRS

    symbols = [symbol for pair in PAIRS for symbol in (pair.small, pair.large)]
    facts = [plausible_fund(f)[0] for f in CsvSource(directory, as_of=end).fetch_funds(symbols)]
    funds = pd.DataFrame(
        [dataclasses.asdict(f) for f in facts], columns=[f.name for f in dataclasses.fields(FundFacts)]
    )
    return {key: gap_series(funds, key) for key in keys}


def cmd_backup(config: Config, args: argparse.Namespace) -> int:
    from database.files import backup

    copied = backup(config.db_path, args.path)
    rows = ", ".join(f"{name} {count:,}" for name, count in copied.tables.items())
    print(f"backed up {config.db_path} to {copied.path} ({copied.bytes:,} bytes; {rows})")
    return 0


def cmd_restore(config: Config, args: argparse.Namespace) -> int:
    from database.files import restore

    restored, kept = restore(args.path, config.db_path)
    rows = ", ".join(f"{name} {count:,}" for name, count in restored.tables.items())
    print(f"restored {args.path} to {config.db_path} ({rows})")
    if kept is not None:
        print(f"the database it replaced is kept as {kept}")
    return 0


def cmd_healthcheck(config: Config) -> int:
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
        hint = ""
        if config.health_port is None and not config.webhook_url:
            hint = (
                f" (with long polling the bot serves /healthz only when CAPGAP_HEALTH_PORT is set: set it, "
                f"e.g. CAPGAP_HEALTH_PORT={DEFAULT_HEALTH_PORT}, for the bot and for this command)"
            )
        elif config.health_port is None:
            hint = f" (is the bot running? it serves /healthz on port {port}, CAPGAP_HEALTH_PORT)"
        else:
            hint = f" (is the bot running with CAPGAP_HEALTH_PORT={port} and CAPGAP_LISTEN={config.listen}?)"
        return fail(f"no answer from {url}: {getattr(exc, 'reason', exc)}{hint}", EXIT_FAILURE)
    print(body.decode("utf-8", errors="replace"))
    return 0 if status == 200 else EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    """Run one command; a reader that goes away (``capgap ask … | head -1``) ends it quietly."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except BrokenPipeError:
        # Python's advice (the signal module's note on SIGPIPE): point stdout at devnull, so the flush at
        # exit does not fail a second time, and exit 1 as Python does on EPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return status


def _main(argv: list[str] | None) -> int:
    # PTB 22: RetryAfter.retry_after as a timedelta (the coming default), without a deprecation warning.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    args = parser().parse_args(argv)
    from database.files import DatabaseBusy, NotABackup, database_problem

    try:
        config = load()
    except ConfigError as exc:
        return fail(str(exc))
    try:
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
    except sqlite3.Error as exc:  # a damaged file, a full disk: at start, before anything else ran
        if args.command in ("run", "ask"):
            return fail(database_problem(config.db_path, exc), EXIT_FAILURE)
        return fail(f"SQLite: {exc}", EXIT_FAILURE)
    except ValueError as exc:  # e.g. --as-of with the Yahoo source
        return fail(str(exc))
    except MarketUnavailable as exc:  # e.g. a history file with no usable row
        return fail(str(exc), EXIT_FAILURE)
    return fail(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
