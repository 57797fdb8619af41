"""What the answers say at their edges: targets below the close, Telegram HTML escaping, since-dates the
history cannot answer, long periods, and the small replies users expect (/digest, /tz, a mistyped command).

Figures are worked out here from the CSV history, independently of ``market.metrics``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from telegram import Bot
from telegram.constants import ParseMode

from alerts.messages import alert_text, plain_alert_text
from bot import commands
from bot.format import plain
from bot.services import Services, build_services
from market.csv_source import CsvSource
from testing.telegram import TelegramEmulator
from testing.world import TEST_TOKEN, make_config
from tests.conftest import DirectBot, FakeClock
from tests.test_answers import ask, closes, last_on_or_before

NOV_15_2021 = date(2021, 11, 15)
EVERY_PERIOD = ("1d", "1w", "1m", "3m", "6m", "ytd", "1y", "3y", "5y", "10y", "20y", "max")
# Every "&" in Telegram HTML must start one of the entities Telegram knows.
BARE_AMPERSAND = re.compile(r"&(?!(?:lt|gt|amp|quot|#[0-9]+|#[xX][0-9a-fA-F]+);)")


def first_shared_day() -> date:
    return min(set(closes("RUT")) & set(closes("GSPC")))


@pytest.fixture
def services_nov_15_2021(tmp_path: Path, shared_data: Path) -> Iterator[Services]:
    """Services on the CSV history as at the 15 Nov 2021 close (the Russell's record month)."""
    clock = FakeClock(datetime(2021, 11, 15, 22, 0, tzinfo=UTC))
    config = make_config(tmp_path, f"csv:{shared_data}")
    services = build_services(config, source=CsvSource(shared_data, as_of=NOV_15_2021), clock=clock)
    services.market.ensure_loaded()
    yield services
    services.close()


# --- /target --------------------------------------------------------------------------------------------


async def test_target_below_the_close_states_how_far_above_and_the_fall_needed(
    services_nov_15_2021: Services,
) -> None:
    """At 2,400.93 the Russell is 25.05% above 1,920, and a 20.03% fall takes it there (not "-20.03%")."""
    last = closes("RUT")[NOV_15_2021]
    text = plain((await ask(services_nov_15_2021, "/target 1920 rut")).text)
    above, fall = (last / 1920 - 1) * 100, (1 - 1920 / last) * 100
    assert f"{above:.2f}" == "25.05" and f"{fall:.2f}" == "20.03"
    assert (
        f"The Russell 2000 is {above:.2f}% above 1,920: a fall of {fall:.2f}% from {last:,.2f} "
        "(15 Nov 2021 close) would take it there."
    ) in text
    high = max(v for d, v in closes("RUT").items() if d <= NOV_15_2021)
    assert f"1,920 is {(1 - 1920 / high) * 100:.2f}% below its all-time closing high of {high:,.2f}" in text


async def test_target_shows_the_level_as_typed_and_never_a_zero_distance(csv_services: Services) -> None:
    last = closes("RUT")[date(2024, 1, 18)]
    at = plain((await ask(csv_services, "/target 1923.65")).text)
    assert "The Russell 2000 is already at 1,923.65: that was its 18 Jan 2024 close." in at
    near = plain((await ask(csv_services, "/target 1923.7")).text)
    assert f"needs +{(1923.7 / last - 1) * 100:.3f}% to reach 1,923.7 from 1,923.65" in near
    for text in (at, near):
        assert "0.00%" not in text and "1,924" not in text


async def test_target_refuses_a_level_with_more_than_two_decimals(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/target 1923.654")).text)
    assert "“1923.654” has more decimals than an index level: at most 2" in text


# --- one escape for Telegram HTML ----------------------------------------------------------------------


async def test_every_answer_escapes_ampersands_in_the_html_it_sends(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]],
) -> None:
    """Each command's examples, as sent to Telegram: every "&" is an entity, and "S&P 500" reads whole."""
    direct_bot = await direct_bot_factory(flood_per_minute=0)  # a user trying every example in a row
    chat = 4242
    sent: list[Any] = []
    for command in commands.registry():
        if command.admin_only or command.name == "forget":
            continue
        for example in command.examples:
            sent += [c for c in await direct_bot.message(chat, example) if c.method.startswith("send")]
    sent += [c for c in await direct_bot.message(chat, "/target 6000 spx") if c.method == "sendMessage"]
    for call in sent:
        html = str(call.params.get("text") or call.params.get("caption") or "")
        assert not BARE_AMPERSAND.search(html), (call.method, html[:200])
    target = sent[-1]
    assert "<b>S&amp;P 500</b> needs" in target.params["text"]
    assert target.result["text"].startswith("The S&P 500 needs")


def hit(key: str, kind: str, level: float, value: float, spec: str) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "level": level,
        "value": value,
        "source": "close",
        "spec": spec,
        "time": pd.Timestamp("2024-01-18 21:00", tz="UTC"),
        "group_id": 3,
        "once": False,
    }


def test_alert_pushes_escape_the_sp_500_and_the_lead_once(csv_services: Services) -> None:
    snapshot = csv_services.market.snapshot
    hits = [
        hit("^GSPC", "above", 4700.0, 4780.94, "spx above 4700"),
        hit("LEAD:3m", "below", -5.0, -7.5, "lead -5% 3m"),
    ]
    (text,) = alert_text(hits, snapshot, {}, source="Yahoo & friends")
    assert not BARE_AMPERSAND.search(text), text
    assert "S&amp;P 500 rose to 4,700.00 or more" in text
    assert "The Russell's lead over the S&amp;P (3M) fell to" in text and "&amp;amp;" not in text
    assert "Yahoo &amp; friends" in text
    assert plain(text).count("S&P") == 2
    (bare,) = plain_alert_text([hit("^GSPC", "above", 4700.0, 4780.94, "spx above 4700 & more")])
    assert "spx above 4700 &amp; more" in bare


async def test_the_emulator_keeps_a_lone_ampersand_as_telegram_does(
    telegram_emulator: TelegramEmulator,
) -> None:
    """tdlib's decode_html_entity (the Bot API's HTML parser) keeps an "&" that starts no known entity, and
    reads a named entity as the letters after "&", so "&amp1" is "&1"."""
    async with Bot(TEST_TOKEN, base_url=telegram_emulator.base_url) as bot:
        message = await bot.send_message(5, "S&P 500 &amp1 &lt;b&gt; AT&T", parse_mode=ParseMode.HTML)
    assert message.text == "S&P 500 &1 <b> AT&T"


# --- since-dates and long periods ----------------------------------------------------------------------


async def test_a_since_date_reads_as_since_with_the_lead_from_the_csv(csv_services: Services) -> None:
    rut, spx = closes("RUT"), closes("GSPC")
    since = date(2012, 6, 13)
    r = rut[date(2024, 1, 18)] / rut[since] - 1
    s = spx[date(2024, 1, 18)] / spx[since] - 1
    text = plain((await ask(csv_services, "/standing 2012-06-13")).text)
    assert (
        f"Since 13 Jun 2012 the Russell 2000 lagged the S&P 500 by {abs(r - s) * 100:.1f} points "
        f"({r * 100:+.2f}% vs {s * 100:+.2f}%)."
    ) in text
    assert "Over since" not in text


async def test_a_since_date_on_the_latest_close_says_there_is_nothing_to_compare(
    csv_services: Services,
) -> None:
    text = plain((await ask(csv_services, "/standing 2024-01-18")).text)
    assert text == (
        "18 Jan 2024 is the latest close, so there is nothing to compare it with yet. "
        "Pick an earlier date, e.g. /standing 2024-01-17."
    )


@pytest.mark.parametrize("command", ["standing", "chart"])
async def test_a_date_after_the_last_close_says_so(csv_services: Services, command: str) -> None:
    answer = await ask(csv_services, f"/{command} 2030-01-01")
    assert answer.photo is None
    assert plain(answer.text).startswith("1 Jan 2030 is after the latest close (18 Jan 2024)")
    assert "too short" not in answer.text


@pytest.mark.parametrize("command", ["standing", "chart"])
async def test_a_date_before_the_history_names_its_first_day_and_offers_it(
    csv_services: Services, command: str
) -> None:
    first = first_shared_day()
    answer = await ask(csv_services, f"/{command} 1900-01-01")
    assert answer.photo is None
    assert plain(answer.text) == (
        f"The history both indices share starts on {first.day} {first:%b %Y}, after 1 Jan 1900. "
        f"Try /{command} {first.isoformat()} or /{command} max for all of it."
    )
    offered = await ask(csv_services, f"/{command} {first.isoformat()}")
    assert "starts on" not in offered.text


async def test_20y_and_max_are_periods_with_their_figures_from_the_csv(csv_services: Services) -> None:
    rut, spx = closes("RUT"), closes("GSPC")
    as_of, first = date(2024, 1, 18), first_shared_day()
    text = plain((await ask(csv_services, "/standing 20y")).text)
    r20 = rut[as_of] / last_on_or_before(rut, date(2004, 1, 18)) - 1
    s20 = spx[as_of] / last_on_or_before(spx, date(2004, 1, 18)) - 1
    row = next(line for line in text.splitlines() if line.startswith("▸20Y"))
    assert f"{r20 * 100:+.2f}%" in row and f"{s20 * 100:+.2f}%" in row
    assert f"Over the last 20 years the Russell 2000 lagged the S&P 500 by {abs(r20 - s20) * 100:.1f}" in text

    text = plain((await ask(csv_services, "/standing max")).text)
    r_max, s_max = rut[as_of] / rut[first] - 1, spx[as_of] / spx[first] - 1
    row = next(line for line in text.splitlines() if line.startswith("▸MAX"))
    assert f"{r_max * 100:+,.2f}%" in row and f"{s_max * 100:+,.2f}%" in row
    assert f"Since {first.day} {first:%b %Y}, all the history both share, the Russell 2000" in text

    chart = await ask(csv_services, "/chart max")
    assert chart.photo is not None
    assert f"RUT {r_max * 100:+,.2f}% · SPX {s_max * 100:+,.2f}%" in plain(chart.text)


async def test_the_20y_and_max_buttons_switch_the_period(direct_bot: DirectBot) -> None:
    (menu,) = [c for c in await direct_bot.message(77, "/standing") if c.method == "sendMessage"]
    keyboard = menu.params["reply_markup"]["inline_keyboard"]
    labels = [b["text"] for row in keyboard[:2] for b in row]  # the periods; then price/total and share
    assert labels[-2:] == ["20Y", "MAX"]
    for data, row in (("standing:20y", "▸20Y"), ("standing:max", "▸MAX")):
        _, calls = await direct_bot.press(77, menu.result["message_id"], data)
        (edit,) = [c for c in calls if c.method == "editMessageText"]
        assert row in edit.result["text"]


async def test_the_period_error_lists_every_period_accepted(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/chart 7q")).text)
    assert ", ".join(EVERY_PERIOD) in text
    for period in EVERY_PERIOD:
        assert "I don't know" not in (await ask(csv_services, f"/standing {period}")).text, period


# --- /etf -----------------------------------------------------------------------------------------------


async def test_etf_first_year_fee_is_what_one_year_costs(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/etf 10000 1")).text)
    for symbol, fee in (("IWM", 0.0019), ("VTWO", 0.0010), ("SPY", 0.0009450)):
        row = next(line for line in text.splitlines() if line.startswith(symbol + " ")).split()
        one_year_cost = 10000 * 1.07 - 10000 * 1.07 * (1 - fee)
        assert row[2] == row[3] == f"${one_year_cost:,.0f}", row
    assert "each year's fee comes out of the balance at the year's end" in text
    assert "the 1st year's is $10,700 × the fee" in text


# --- small replies --------------------------------------------------------------------------------------


async def test_a_mistyped_command_gets_the_closest_one(csv_services: Services) -> None:
    assert "I don't know /stnading. Did you mean /standing?" in plain(
        (await ask(csv_services, "/stnading")).text
    )
    assert "Did you mean /target?" in plain((await ask(csv_services, "/targte 3000")).text)
    assert "Did you mean" not in (await ask(csv_services, "/frobnicate")).text
    assert "/stats" not in (await ask(csv_services, "/stat")).text  # admin only: never suggested


async def test_digest_alone_shows_the_current_setting(csv_services: Services) -> None:
    assert "The daily digest is off" in plain((await ask(csv_services, "/digest")).text)
    await ask(csv_services, "/tz Europe/Berlin")
    await ask(csv_services, "/digest 22:30")
    text = plain((await ask(csv_services, "/digest")).text)
    assert text.startswith("📰 The daily digest comes at 22:30 (Europe/Berlin)")
    assert csv_services.alerts.chats.get(1).digest_time == "22:30"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("UTC", "UTC"),
        ("utc", "UTC"),
        ("america/new_york", "America/New_York"),
        ("EUROPE/BERLIN", "Europe/Berlin"),
    ],
)
async def test_tz_accepts_utc_and_any_case_of_an_iana_name(
    csv_services: Services, typed: str, stored: str
) -> None:
    assert plain((await ask(csv_services, f"/tz {typed}")).text) == f"🕰 Time zone set to {stored}."
    assert csv_services.alerts.chats.get(1).zone == stored


async def test_tz_typo_suggests_the_closest_names_and_changes_nothing(csv_services: Services) -> None:
    await ask(csv_services, "/tz Asia/Tokyo")
    text = plain((await ask(csv_services, "/tz Europe/Berln")).text)
    assert text.startswith("“Europe/Berln” is not a time zone name. Did you mean Europe/Berlin")
    assert "Did you mean America/New_York?" in plain((await ask(csv_services, "/tz new_york")).text)
    assert csv_services.alerts.chats.get(1).zone == "Asia/Tokyo"
