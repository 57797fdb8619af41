"""capgap's settings: one frozen dataclass, built once from an environment mapping."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

DEFAULT_API = "https://api.telegram.org"
DEFAULT_DB = "capgap.db"
DEFAULT_MARKET = "yahoo"
DEFAULT_POLL_SECONDS = 300
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("plain", "json")
DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_WEBHOOK_PORT = 8080
DEFAULT_HEALTH_PORT = 8081
DEFAULT_FLOOD_PER_MINUTE = 20

# What Telegram issues: a numeric bot id, a colon, and a 35-character secret.
_TOKEN_SHAPE = re.compile(r"^\d{5,16}:[A-Za-z0-9_-]{30,64}$")
# Telegram accepts 1-256 of these characters as a webhook secret; fewer than 16 would be guessable.
_WEBHOOK_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


class Secret:
    """A value that never shows itself in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Config:
    token: Secret | None
    api_root: str = DEFAULT_API
    db_path: Path = Path(DEFAULT_DB)
    market: str = DEFAULT_MARKET  # "yahoo" or "csv:DIR"
    log_level: str = "INFO"
    poll_seconds: int = DEFAULT_POLL_SECONDS
    rate_limit: int = 30  # messages a second across all chats; 0 turns the limiter off
    as_of: date | None = None  # csv market only: run as if at this date's close (demos, replayed tests)
    log_format: str = "plain"  # "plain" lines for people, "json" lines for a log collector
    webhook_url: str | None = None  # set: Telegram posts updates there instead of being polled
    listen: str = DEFAULT_LISTEN  # where the webhook and health servers listen
    webhook_port: int = DEFAULT_WEBHOOK_PORT
    webhook_secret: Secret | None = (
        None  # None: a fresh random secret at every start (see bot/app.py (webhook_secret))
    )
    health_port: int | Literal["off"] | None = None  # None: on with a webhook, off with polling
    admins: frozenset[int] = frozenset()  # Telegram user ids that may use admin-only commands
    allowed_chats: frozenset[int] | None = None  # None: every chat may use the bot
    flood_per_minute: int = DEFAULT_FLOOD_PER_MINUTE  # commands a chat may send a minute; 0: no limit

    @property
    def health_port_in_effect(self) -> int | None:
        """The port of /healthz, or None when it is off."""
        if self.health_port == "off":
            return None
        if self.health_port is None:
            return DEFAULT_HEALTH_PORT if self.webhook_url else None
        return self.health_port

    @property
    def csv_dir(self) -> Path | None:
        return Path(self.market[4:]).expanduser() if self.market.startswith("csv:") else None

    def require_token(self) -> Secret:
        if self.token is None:
            raise ConfigError("CAPGAP_TELEGRAM_TOKEN is not set: put the token @BotFather gave you in it")
        return self.token


def _int_setting(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _ids_setting(environ: Mapping[str, str], name: str) -> frozenset[int] | None:
    """A comma-separated list of Telegram ids (groups' are negative); None when unset."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    ids = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not re.fullmatch(r"-?\d{1,20}", part):
            raise ConfigError(
                f"{name} must be comma-separated Telegram ids (whole numbers), got {part[:30]!r}"
            )
        ids.add(int(part))
    return frozenset(ids)


def webhook_url(url: str, name: str = "CAPGAP_WEBHOOK_URL") -> str:
    """Check a webhook URL: Telegram only posts to https (plain http is let through for loopback hosts,
    which only a local Bot API server or the tests can reach)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    loopback = host == "localhost" or _is_loopback(host)
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ConfigError(f"{name} must be an https:// URL (Telegram only posts to https), got {url[:100]!r}")
    if not host or parts.query or parts.fragment or any(c.isspace() for c in url.strip()):
        raise ConfigError(f"{name} must look like https://HOST/PATH, without a query, got {url[:100]!r}")
    return url.strip()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen_setting(environ: Mapping[str, str]) -> str:
    raw = environ.get("CAPGAP_LISTEN", "").strip() or DEFAULT_LISTEN
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        raise ConfigError(
            f"CAPGAP_LISTEN must be an IP address such as 127.0.0.1 or 0.0.0.0, got {raw[:60]!r}"
        ) from None
    return raw


def _health_setting(environ: Mapping[str, str]) -> int | Literal["off"] | None:
    raw = environ.get("CAPGAP_HEALTH_PORT", "").strip().lower()
    if raw == "off":
        return "off"
    # Port 0 asks the system for a free port (the address is logged); tests use it.
    return _int_setting(environ, "CAPGAP_HEALTH_PORT", -1, 0, 65_535) if raw else None


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from ``environ`` (default: the process environment).

    The token is checked for shape only; Telegram tells whether it is valid.
    """
    env = os.environ if environ is None else environ
    raw_token = env.get("CAPGAP_TELEGRAM_TOKEN", "").strip()
    token = None
    if raw_token:
        if not _TOKEN_SHAPE.match(raw_token):
            # Never echo the value: a malformed token may still be most of a real one.
            raise ConfigError(
                "CAPGAP_TELEGRAM_TOKEN is malformed: expected '<bot id>:<secret>' as @BotFather gives it"
            )
        token = Secret(raw_token)

    api_root = env.get("CAPGAP_TELEGRAM_API", "").strip() or DEFAULT_API
    if not re.match(r"^https?://[^\s/]+", api_root):
        raise ConfigError(f"CAPGAP_TELEGRAM_API must be an http(s) URL, got {api_root!r}")

    market = env.get("CAPGAP_MARKET", "").strip() or DEFAULT_MARKET
    if market != "yahoo" and not (market.startswith("csv:") and len(market) > 4):
        raise ConfigError(f"CAPGAP_MARKET must be 'yahoo' or 'csv:DIR', got {market!r}")
    if market.startswith("csv:") and not Path(market[4:]).expanduser().is_dir():
        raise ConfigError(f"CAPGAP_MARKET points at {market[4:]!r}, which is not a directory")

    as_of = None
    raw_as_of = env.get("CAPGAP_AS_OF", "").strip()
    if raw_as_of:
        try:
            as_of = date.fromisoformat(raw_as_of)
        except ValueError:
            raise ConfigError(f"CAPGAP_AS_OF must be a date (YYYY-MM-DD), got {raw_as_of!r}") from None
        if not market.startswith("csv:"):
            raise ConfigError("CAPGAP_AS_OF needs CAPGAP_MARKET=csv:DIR (Yahoo only serves the present)")

    log_level = (env.get("CAPGAP_LOG_LEVEL", "").strip() or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"CAPGAP_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")

    log_format = (env.get("CAPGAP_LOG_FORMAT", "").strip() or "plain").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"CAPGAP_LOG_FORMAT must be 'plain' or 'json', got {log_format!r}")

    raw_webhook = env.get("CAPGAP_WEBHOOK_URL", "").strip()
    raw_secret = env.get("CAPGAP_WEBHOOK_SECRET", "").strip()
    if raw_secret and not _WEBHOOK_SECRET_SHAPE.match(raw_secret):
        # Never echo it, as for the token.
        raise ConfigError(
            "CAPGAP_WEBHOOK_SECRET must be 16 to 256 letters, digits, '_' or '-' (Telegram's rule), "
            "or unset for a fresh random one at each start"
        )

    return Config(
        token=token,
        api_root=api_root.rstrip("/"),
        db_path=Path(env.get("CAPGAP_DB", "").strip() or DEFAULT_DB).expanduser(),
        market=market,
        log_level=log_level,
        poll_seconds=_int_setting(env, "CAPGAP_POLL_SECONDS", DEFAULT_POLL_SECONDS, 15, 86_400),
        rate_limit=_int_setting(env, "CAPGAP_RATE_LIMIT", 30, 0, 10_000),
        as_of=as_of,
        log_format=log_format,
        webhook_url=webhook_url(raw_webhook) if raw_webhook else None,
        listen=_listen_setting(env),
        webhook_port=_int_setting(env, "CAPGAP_WEBHOOK_PORT", DEFAULT_WEBHOOK_PORT, 1, 65_535),
        webhook_secret=Secret(raw_secret) if raw_secret else None,
        health_port=_health_setting(env),
        admins=_ids_setting(env, "CAPGAP_ADMINS") or frozenset(),
        allowed_chats=_ids_setting(env, "CAPGAP_ALLOWED_CHATS"),
        flood_per_minute=_int_setting(env, "CAPGAP_FLOOD_PER_MINUTE", DEFAULT_FLOOD_PER_MINUTE, 0, 10_000),
    )


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a .env file (comments, blank lines and ``export`` prefixes allowed)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def environment_with_dotenv(path: Path = Path(".env")) -> dict[str, str]:
    """The process environment over the .env file: a real environment variable wins."""
    return {**read_dotenv(path), **os.environ}
