"""bot/config.py: settings from an environment mapping, a token that never shows, and the .env file."""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path

import pytest

from bot.config import (
    DEFAULT_API,
    Config,
    ConfigError,
    Secret,
    environment_with_dotenv,
    load_config,
    read_dotenv,
)

# Shaped like a real token (numeric id, colon, 35-character secret) but made up.
# Shaped like a real token (id, colon, 35 characters) but assembled here, so no token-like text is committed.
GOOD_TOKEN = "123456789:" + "AAH" + "fake" * 8


@pytest.fixture(autouse=True)
def no_capgap_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own CAPGAP_* variables out of every test here."""
    import os

    for name in list(os.environ):
        if name.startswith("CAPGAP_"):
            monkeypatch.delenv(name)


# --- load_config: defaults and each setting ---------------------------------------------------------


def test_empty_environment_gives_the_documented_defaults() -> None:
    config = load_config({})
    assert config.token is None
    assert config.api_root == "https://api.telegram.org" == DEFAULT_API
    assert config.db_path == Path("capgap.db")
    assert config.market == "yahoo"
    assert config.csv_dir is None
    assert config.csv_dir is None
    assert config.log_level == "INFO"
    assert config.poll_seconds == 300
    assert config.rate_limit == 30


def test_blank_values_count_as_unset() -> None:
    blank = {
        name: "   "
        for name in (
            "CAPGAP_TELEGRAM_TOKEN",
            "CAPGAP_TELEGRAM_API",
            "CAPGAP_DB",
            "CAPGAP_MARKET",
            "CAPGAP_LOG_LEVEL",
            "CAPGAP_POLL_SECONDS",
            "CAPGAP_RATE_LIMIT",
        )
    }
    assert load_config(blank) == load_config({})


def test_every_setting_is_read(tmp_path: Path) -> None:
    config = load_config(
        {
            "CAPGAP_TELEGRAM_TOKEN": GOOD_TOKEN,
            "CAPGAP_TELEGRAM_API": "http://127.0.0.1:8081",
            "CAPGAP_DB": str(tmp_path / "bot.db"),
            "CAPGAP_MARKET": f"csv:{tmp_path}",
            "CAPGAP_LOG_LEVEL": "DEBUG",
            "CAPGAP_POLL_SECONDS": "60",
            "CAPGAP_RATE_LIMIT": "0",
        }
    )
    assert config.token is not None
    assert config.token.reveal() == GOOD_TOKEN
    assert config.require_token() is config.token
    assert config.api_root == "http://127.0.0.1:8081"
    assert config.db_path == tmp_path / "bot.db"
    assert config.market == f"csv:{tmp_path}"
    assert config.csv_dir is not None
    assert config.csv_dir == tmp_path
    assert config.log_level == "DEBUG"
    assert config.poll_seconds == 60
    assert config.rate_limit == 0


def test_surrounding_whitespace_is_stripped_from_values(tmp_path: Path) -> None:
    config = load_config(
        {
            "CAPGAP_TELEGRAM_TOKEN": f"  {GOOD_TOKEN}\n",
            "CAPGAP_DB": f" {tmp_path / 'x.db'} ",
            "CAPGAP_MARKET": " yahoo ",
            "CAPGAP_POLL_SECONDS": " 90 ",
        }
    )
    assert config.token is not None
    assert config.token.reveal() == GOOD_TOKEN
    assert config.db_path == tmp_path / "x.db"
    assert config.market == "yahoo"
    assert config.poll_seconds == 90


def test_api_root_loses_its_trailing_slash() -> None:
    assert (
        load_config({"CAPGAP_TELEGRAM_API": "https://bots.example.org/"}).api_root
        == "https://bots.example.org"
    )


def test_log_level_is_case_insensitive() -> None:
    assert load_config({"CAPGAP_LOG_LEVEL": "warning"}).log_level == "WARNING"


def test_db_path_expands_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_config({"CAPGAP_DB": "~/capgap/bot.db"}).db_path == tmp_path / "capgap" / "bot.db"


def test_no_argument_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPGAP_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("CAPGAP_RATE_LIMIT", "12")
    config = load_config()
    assert (config.log_level, config.rate_limit) == ("ERROR", 12)


def test_config_is_frozen() -> None:
    config = load_config({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.market = "csv:/tmp"  # type: ignore[misc]


def test_missing_token_is_only_an_error_when_required() -> None:
    config = load_config({})
    with pytest.raises(ConfigError, match="CAPGAP_TELEGRAM_TOKEN is not set"):
        config.require_token()


# --- load_config: malformed values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "123456789",  # no secret
        "123456789:short",  # secret too short
        "abc:AAHfakefakefakefakefakefakefakefake",  # bot id not numeric
        "123456789:AAHfake fakefakefakefakefakefakefake",  # a space inside
        "123456789:AAHfakefakefakefakefakefakefake!!!",  # characters Telegram never issues
        GOOD_TOKEN + ":extra",
    ],
)
def test_malformed_token_is_rejected_without_echoing_it(token: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"CAPGAP_TELEGRAM_TOKEN": token})
    message = str(caught.value)
    assert "CAPGAP_TELEGRAM_TOKEN" in message
    assert "malformed" in message
    rendered = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert token not in rendered
    # Nor a recognisable chunk of it: the part after the colon is the secret.
    secret = token.partition(":")[2]
    if len(secret) >= 5:
        assert secret not in rendered


@pytest.mark.parametrize(
    "url", ["api.telegram.org", "ftp://api.telegram.org", "https://", "https:// api.telegram.org", "telegram"]
)
def test_api_root_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ConfigError, match="CAPGAP_TELEGRAM_API must be an http"):
        load_config({"CAPGAP_TELEGRAM_API": url})


@pytest.mark.parametrize("market", ["csv:", "csv", "google", "yahoo:fast", "file:/data"])
def test_market_must_be_yahoo_or_csv_dir(market: str) -> None:
    with pytest.raises(ConfigError, match="CAPGAP_MARKET must be 'yahoo' or 'csv:DIR'"):
        load_config({"CAPGAP_MARKET": market})


def test_csv_market_directory_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="not a directory") as caught:
        load_config({"CAPGAP_MARKET": f"csv:{missing}"})
    assert str(missing) in str(caught.value)


def test_csv_market_must_be_a_directory_not_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "RUT_daily.csv"
    a_file.write_text("date,close\n")
    with pytest.raises(ConfigError, match="not a directory"):
        load_config({"CAPGAP_MARKET": f"csv:{a_file}"})


def test_unknown_log_level_is_rejected() -> None:
    with pytest.raises(ConfigError, match="CAPGAP_LOG_LEVEL must be one of DEBUG, INFO"):
        load_config({"CAPGAP_LOG_LEVEL": "verbose"})


@pytest.mark.parametrize(
    ("name", "low", "high"), [("CAPGAP_POLL_SECONDS", 15, 86_400), ("CAPGAP_RATE_LIMIT", 0, 10_000)]
)
def test_whole_number_settings_accept_their_bounds(name: str, low: int, high: int) -> None:
    field = "poll_seconds" if name == "CAPGAP_POLL_SECONDS" else "rate_limit"
    assert getattr(load_config({name: str(low)}), field) == low
    assert getattr(load_config({name: str(high)}), field) == high


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CAPGAP_POLL_SECONDS", "14"),
        ("CAPGAP_POLL_SECONDS", "86401"),
        ("CAPGAP_RATE_LIMIT", "-1"),
        ("CAPGAP_RATE_LIMIT", "10001"),
    ],
)
def test_whole_number_settings_reject_values_out_of_range(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be between .* got {value}"):
        load_config({name: value})


@pytest.mark.parametrize("value", ["five", "1.5", "30s", "0x10"])
def test_whole_number_settings_reject_non_integers(value: str) -> None:
    with pytest.raises(ConfigError, match="CAPGAP_POLL_SECONDS must be a whole number"):
        load_config({"CAPGAP_POLL_SECONDS": value})


# --- the token never shows --------------------------------------------------------------------------


def test_config_never_shows_the_token_when_printed() -> None:
    config = load_config({"CAPGAP_TELEGRAM_TOKEN": GOOD_TOKEN})
    secret_part = GOOD_TOKEN.partition(":")[2]
    renderings = [
        repr(config),
        str(config),
        f"{config}",
        f"{config!r}",
        f"{config.token}",
        f"{config.token!r}",
        f"{config.token!s}",
        format(config.token, ""),
        f"{config.token} {config.token!r}",
        repr(dataclasses.asdict(config)),
        str(dataclasses.astuple(config)),
        repr([config, {"config": config}]),
    ]
    for text in renderings:
        assert secret_part not in text, text
        assert "123456789" not in text, text
    assert "Secret('***')" in repr(config)


def test_secret_reveals_its_value_only_on_request() -> None:
    secret = Secret(GOOD_TOKEN)
    assert secret.reveal() == GOOD_TOKEN
    assert secret == Secret(GOOD_TOKEN)
    assert secret != Secret("other")
    assert secret != GOOD_TOKEN
    assert len({secret, Secret(GOOD_TOKEN)}) == 1
    assert bool(secret)
    assert not bool(Secret(""))
    assert not hasattr(secret, "__dict__")  # no attribute dump to leak it through


def test_configs_with_the_same_token_compare_equal() -> None:
    assert load_config({"CAPGAP_TELEGRAM_TOKEN": GOOD_TOKEN}) == Config(token=Secret(GOOD_TOKEN))


# --- .env files -------------------------------------------------------------------------------------


def test_read_dotenv_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / ".env") == {}


def test_read_dotenv_parses_comments_quotes_and_export(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# capgap settings\n"
        "\n"
        "   # an indented comment\n"
        "# CAPGAP_TELEGRAM_TOKEN=commented-out\n"
        "export CAPGAP_DB=/var/lib/capgap/bot.db\n"
        'CAPGAP_MARKET="csv:/data with spaces"\n'
        "CAPGAP_LOG_LEVEL='debug'\n"
        "  SPACED_KEY  =  value with spaces  \n"
        "NO_EQUALS_SIGN\n"
        "EMPTY=\n"
        'EMPTY_QUOTED=""\n'
        "URL=https://example.org/path?a=b=c\n"
        "MISMATCHED=\"abc'\n"
        'INNER="say "hi""\n',
        encoding="utf-8",
    )
    assert read_dotenv(env_file) == {
        "CAPGAP_DB": "/var/lib/capgap/bot.db",
        "CAPGAP_MARKET": "csv:/data with spaces",
        "CAPGAP_LOG_LEVEL": "debug",
        "SPACED_KEY": "value with spaces",
        "EMPTY": "",
        "EMPTY_QUOTED": "",
        "URL": "https://example.org/path?a=b=c",
        "MISMATCHED": "\"abc'",
        "INNER": 'say "hi"',
    }


def test_read_dotenv_later_lines_win(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CAPGAP_LOG_LEVEL=INFO\nCAPGAP_LOG_LEVEL=ERROR\n")
    assert read_dotenv(env_file) == {"CAPGAP_LOG_LEVEL": "ERROR"}


def test_read_dotenv_handles_windows_line_endings(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"CAPGAP_LOG_LEVEL=DEBUG\r\nCAPGAP_RATE_LIMIT=5\r\n")
    assert read_dotenv(env_file) == {"CAPGAP_LOG_LEVEL": "DEBUG", "CAPGAP_RATE_LIMIT": "5"}


def test_real_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"CAPGAP_LOG_LEVEL=DEBUG\nCAPGAP_MARKET=csv:{tmp_path}\nexport CAPGAP_POLL_SECONDS=120\n"
    )
    monkeypatch.setenv("CAPGAP_LOG_LEVEL", "WARNING")
    environment = environment_with_dotenv(env_file)
    assert environment["CAPGAP_LOG_LEVEL"] == "WARNING"  # the real variable
    assert environment["CAPGAP_MARKET"] == f"csv:{tmp_path}"  # only in .env
    config = load_config(environment)
    assert (config.log_level, config.market, config.poll_seconds) == ("WARNING", f"csv:{tmp_path}", 120)


def test_environment_without_dotenv_is_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPGAP_RATE_LIMIT", "7")
    environment = environment_with_dotenv(tmp_path / "absent.env")
    assert environment["CAPGAP_RATE_LIMIT"] == "7"
    assert load_config(environment).rate_limit == 7


# --- production settings: webhook, health, logs, admins, allowed chats, flood -------------------------


def test_production_settings_have_safe_defaults() -> None:
    config = load_config({})
    assert (config.webhook_url, config.webhook_secret, config.listen, config.webhook_port) == (
        None,
        None,
        "127.0.0.1",
        8080,
    )
    assert config.health_port is None and config.health_port_in_effect is None  # polling: off
    assert (config.log_format, config.admins, config.allowed_chats, config.flood_per_minute) == (
        "plain",
        frozenset(),
        None,
        20,
    )


def test_production_settings_are_read() -> None:
    config = load_config(
        {
            "CAPGAP_WEBHOOK_URL": "https://bot.example.org/capgap/hook",
            "CAPGAP_WEBHOOK_SECRET": "s3cret_token-0123456789",
            "CAPGAP_LISTEN": "0.0.0.0",
            "CAPGAP_WEBHOOK_PORT": "8443",
            "CAPGAP_LOG_FORMAT": "JSON",
            "CAPGAP_ADMINS": "42, 7",
            "CAPGAP_ALLOWED_CHATS": "1001,-1001234567890, ",
            "CAPGAP_FLOOD_PER_MINUTE": "0",
        }
    )
    assert config.webhook_url == "https://bot.example.org/capgap/hook"
    assert config.webhook_secret is not None and config.webhook_secret.reveal() == "s3cret_token-0123456789"
    assert (config.listen, config.webhook_port, config.log_format) == ("0.0.0.0", 8443, "json")
    assert config.health_port_in_effect == 8081  # on by default with a webhook
    assert config.admins == frozenset({42, 7})
    assert config.allowed_chats == frozenset({1001, -1001234567890})
    assert config.flood_per_minute == 0
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("raw", "in_effect_polling", "in_effect_webhook"),
    [("", None, 8081), ("off", None, None), ("OFF", None, None), ("9100", 9100, 9100), ("0", 0, 0)],
)
def test_health_port_is_on_with_a_webhook_off_with_polling_unless_set(
    raw: str, in_effect_polling: int | None, in_effect_webhook: int | None
) -> None:
    polling = load_config({"CAPGAP_HEALTH_PORT": raw})
    webhook = load_config({"CAPGAP_HEALTH_PORT": raw, "CAPGAP_WEBHOOK_URL": "https://bot.example.org/h"})
    assert (polling.health_port_in_effect, webhook.health_port_in_effect) == (
        in_effect_polling,
        in_effect_webhook,
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://bot.example.org/hook",  # Telegram only posts to https
        "bot.example.org/hook",
        "https:///hook",
        "https://bot.example.org/hook?token=1",
        "https://bot.example.org/ho ok",
        "ftp://bot.example.org/hook",
    ],
)
def test_webhook_url_must_be_https_without_a_query(url: str) -> None:
    with pytest.raises(ConfigError, match="CAPGAP_WEBHOOK_URL must"):
        load_config({"CAPGAP_WEBHOOK_URL": url})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8443/hook", "http://localhost/hook", "http://[::1]:80/h"])
def test_plain_http_webhooks_are_only_for_loopback(url: str) -> None:
    assert load_config({"CAPGAP_WEBHOOK_URL": url}).webhook_url == url


@pytest.mark.parametrize("secret", ["short", "has space in it 0123456", "ünïcode-0123456789abc", "x" * 257])
def test_a_bad_webhook_secret_is_rejected_without_echoing_it(secret: str) -> None:
    with pytest.raises(ConfigError, match="CAPGAP_WEBHOOK_SECRET must be 16 to 256") as caught:
        load_config({"CAPGAP_WEBHOOK_SECRET": secret})
    assert secret not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CAPGAP_LOG_FORMAT", "yaml", "CAPGAP_LOG_FORMAT must be 'plain' or 'json'"),
        ("CAPGAP_LISTEN", "example.org", "CAPGAP_LISTEN must be an IP address"),
        ("CAPGAP_WEBHOOK_PORT", "0", "CAPGAP_WEBHOOK_PORT must be between 1 and 65535"),
        ("CAPGAP_HEALTH_PORT", "70000", "CAPGAP_HEALTH_PORT must be between 0 and 65535"),
        ("CAPGAP_HEALTH_PORT", "on", "CAPGAP_HEALTH_PORT must be a whole number"),
        ("CAPGAP_ADMINS", "42,@alice", "CAPGAP_ADMINS must be comma-separated Telegram ids"),
        ("CAPGAP_ALLOWED_CHATS", "1.5", "CAPGAP_ALLOWED_CHATS must be comma-separated Telegram ids"),
        ("CAPGAP_FLOOD_PER_MINUTE", "-1", "CAPGAP_FLOOD_PER_MINUTE must be between 0 and 10000"),
    ],
)
def test_malformed_production_settings_are_one_line_errors(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_config({name: value})
