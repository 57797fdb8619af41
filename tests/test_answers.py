"""The command core's answers on the real history as at the 2024-01-18 close (what chats and the CLI get)."""

from __future__ import annotations

import csv
import re
from datetime import date, datetime, timedelta

import pytest

from alerts.messages import MAX_MESSAGE
from bot import answers, commands, core
from bot.format import plain
from bot.services import Services
from market import calendar
from market.calendar import NEW_YORK
from market.model import FundFacts
from testing.world import SHARED_DATA


def closes(stem: str) -> dict[date, float]:
    with (SHARED_DATA / f"{stem}_daily.csv").open() as handle:
        return {
            date.fromisoformat(r["date"]): float(r["close"]) for r in csv.DictReader(handle) if r["close"]
        }


def last_on_or_before(series: dict[date, float], day: date) -> float:
    return series[max(d for d in series if d <= day)]


async def ask(services: Services, text: str) -> answers.Answer:
    name, args = answers.parse_command_line(text)
    return await core.answer(answers.Request(name, args, services, chat_id=1, user_id=1))


async def test_standing_shows_both_closes_and_the_selected_period(csv_services: Services) -> None:
    rut, spx = closes("RUT"), closes("GSPC")
    expected_rut = rut[date(2024, 1, 18)] / last_on_or_before(rut, date(2014, 1, 18)) - 1
    expected_spx = spx[date(2024, 1, 18)] / last_on_or_before(spx, date(2014, 1, 18)) - 1
    answer = await ask(csv_services, "/standing 10y")
    text = plain(answer.text)
    assert "RUT 1,923.65 (18 Jan 2024 close)" in text
    assert "SPX 4,780.94 (18 Jan 2024 close)" in text
    row = next(line for line in text.splitlines() if line.startswith("▸10Y"))
    assert f"{expected_rut * 100:+.2f}%" in row and f"{expected_spx * 100:+.2f}%" in row
    assert f"by {abs(expected_rut - expected_spx) * 100:.1f} points" in text
    assert "21.25% below its high of 2,442.74 (8 Nov 2021)" in text
    assert "as of 18 Jan 2024 close" in text
    labels = [b.label for row in answer.keyboard for b in row if not b.share]
    assert "• 10Y •" in labels and labels[-2:] == ["20Y", "MAX"] and len(labels) == 10


async def test_standing_defaults_to_one_year_and_accepts_a_since_date(csv_services: Services) -> None:
    assert "▸1Y" in plain((await ask(csv_services, "/standing")).text)
    since = plain((await ask(csv_services, "/standing 2020-03-23")).text)
    rut = closes("RUT")
    expected = rut[date(2024, 1, 18)] / rut[date(2020, 3, 23)] - 1
    assert f"{expected * 100:+.2f}%" in since
    assert "since 23 Mar 2020" in since


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/standing 7q", "I don't know the period “7q”"),
        ("/standing 1y 5y", "takes one period"),
        ("/target", "Usage: /target LEVEL [index]"),
        ("/target abc", "“abc” is not an index level"),
        ("/target -5", "“-5” is not an index level"),
        ("/target 3000 nasdaq", "I don't know the index “nasdaq”"),
        ("/target 99999999", "at most 1,000,000"),
        ("/etf lots", "“lots” is not an amount of money"),
        ("/etf 1000 0", "more than 0 and at most 60 years"),
        ("/etf 1000 nan", "more than 0 and at most 60 years"),
        ("/etf 0", "more than $0"),
        ("/gap now", "/gap takes no arguments"),
        ("/frobnicate", "I don't know /frobnicate. Send /help"),
    ],
)
async def test_bad_arguments_get_a_specific_reply(csv_services: Services, text: str, says: str) -> None:
    assert says in plain((await ask(csv_services, text)).text)


async def test_target_gives_the_gain_needed_and_the_iwm_price(csv_services: Services) -> None:
    rut, iwm = closes("RUT"), closes("IWM")
    day = date(2024, 1, 18)
    text = plain((await ask(csv_services, "/target 3,000")).text)
    assert f"needs {(3000 / rut[day] - 1) * 100:+.2f}% to reach 3,000" in text
    assert f"${3000 * iwm[day] / rut[day]:,.2f} a share of IWM" in text


async def test_target_below_the_close_says_how_far_above_it_is_and_the_fall_needed(
    csv_services: Services,
) -> None:
    """Above the level is close ÷ level − 1; the fall needed is 1 − level ÷ close: two figures, both positive."""
    last = closes("GSPC")[date(2024, 1, 18)]
    text = plain((await ask(csv_services, "/target 4000 spx")).text)
    assert (
        f"S&P 500 is {(last / 4000 - 1) * 100:.2f}% above 4,000: a fall of {(1 - 4000 / last) * 100:.2f}% "
        f"from {last:,.2f} (18 Jan 2024 close)"
    ) in text
    assert "-" not in text.splitlines()[0]


async def test_etf_costs_follow_the_stated_compounding(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/etf 25000 20")).text)
    for symbol, fee in (("IWM", 0.0019), ("VTWO", 0.0010), ("VOO", 0.0003)):
        cost = 25000 * (1.07**20 - (1.07 * (1 - fee)) ** 20)
        row = next(line for line in text.splitlines() if line.startswith(symbol + " "))
        assert f"${25000 * 1.07 * fee:,.0f}" in row and f"${cost:,.0f}" in row
    assert "VTWO instead of IWM keeps" in text
    assert "Total assets: IWM $62.0B" in text


async def test_etf_defaults_to_ten_thousand_over_ten_years(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/etf")).text)
    assert "$10,000 held 10 years" in text


async def test_gap_is_unavailable_without_price_to_book(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/gap")).text)
    assert "No reading yet" in text and "IWM/IVV and VTWO/VOO" in text


async def test_gap_reports_level_and_change_from_recorded_snapshots(csv_services: Services) -> None:
    # Synthetic P/B values: the shared data has none. Only the iShares pair, so the reading is unchecked.
    snapshots = [
        FundFacts("IWM", date(2023, 1, 18), None, None, 1.90, "synthetic"),
        FundFacts("IVV", date(2023, 1, 18), None, None, 3.80, "synthetic"),
        FundFacts("IWM", date(2024, 1, 18), None, None, 1.80, "synthetic"),
        FundFacts("IVV", date(2024, 1, 18), None, None, 4.50, "synthetic"),
    ]
    csv_services.market.cache.store_funds(snapshots, csv_services.now())
    csv_services.market._snapshot = None
    text = plain((await ask(csv_services, "/gap")).text)
    assert "60.0% discount" in text and "the iShares pair only, ⚠️ unchecked" in text  # 1 - 1.80/4.50
    assert "1Y +10.0 pts (against 18 Jan 2023)" in text  # from 1 - 1.90/3.80 = 50%


async def test_help_lists_every_command_with_an_example(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/help")).text)
    for command in commands.registry():
        if not command.admin_only:
            assert re.search(rf"^/{command.name}\b", text, re.MULTILINE), command.name
            assert command.examples[0] in text
    assert "last close on or before the same calendar date" in text


async def test_market_down_with_empty_cache_says_unavailable(tmp_path, shared_data) -> None:
    from bot.services import build_services
    from market.csv_source import CsvSource
    from testing.world import make_config

    empty = tmp_path / "empty"
    empty.mkdir()
    services = build_services(make_config(tmp_path, f"csv:{empty}"), source=CsvSource(empty))
    services.market.ensure_loaded()
    text = plain((await ask(services, "/standing")).text)
    services.close()
    assert "Market data is unavailable right now" in text and "no history files" in text


async def test_stale_cache_is_flagged(csv_services: Services, clock) -> None:
    clock.advance(days=10)
    text = plain((await ask(csv_services, "/standing")).text)
    assert "stale: the newest close is 18 Jan 2024" in text


def test_an_overlong_answer_is_cut_at_a_line_end_with_its_tags_closed() -> None:
    long = (
        "<b>Your alerts</b>\n<pre>" + "\n".join(f"#{i} RUT above {3000 + i:,}" for i in range(400)) + "</pre>"
    )
    fitted = core.fit(answers.Answer(long))
    assert len(fitted.text) <= MAX_MESSAGE
    assert fitted.text.count("<pre>") == fitted.text.count("</pre>") == 1
    assert "cut to fit" in fitted.text


async def test_an_answer_cached_just_before_the_close_is_not_served_after_it(
    csv_services: Services, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache key holds the last closed session: one minute before Friday's settled close /standing is
    fresh and cached; one minute after it, with the same snapshot, it is rebuilt and says the data is a
    session behind. Serving the cached answer meanwhile asks the calendar nothing."""
    clock.now = datetime(2024, 1, 19, 16, 19, tzinfo=NEW_YORK)  # Friday's close settles at 16:20
    asked: list[datetime] = []
    real = calendar.last_closed_session

    def counted(now: datetime, settle: timedelta = calendar.CLOSE_SETTLE) -> date:
        asked.append(now)
        return real(now, settle)

    monkeypatch.setattr(calendar, "last_closed_session", counted)
    first = plain((await ask(csv_services, "/standing")).text)
    asked_to_build = len(asked)  # the cache's key, and the answer's own footer
    again = [plain((await ask(csv_services, "/standing")).text) for _ in range(20)]
    assert len(asked) == asked_to_build  # twenty cached answers asked the calendar nothing more
    assert "stale" not in first and set(again) == {first}
    clock.advance(minutes=2)
    after = plain((await ask(csv_services, "/standing")).text)
    assert "stale: the newest close is 18 Jan 2024" in after
    sessions = sorted(key[2] for key in csv_services.answers.entries() if key[0] == "standing")
    assert sessions == [date(2024, 1, 18), date(2024, 1, 19)]
