"""/standing and /chart beyond the headline pair: any two instruments, each with its own as-of date, the
200-day average, and the price ratio against its own history (mean, z-score, percentile)."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bot import answers, core
from bot.format import plain
from bot.services import Services, build_services
from market.csv_source import CsvSource
from testing.world import SHARED_DATA, make_config

AS_OF = date(2024, 1, 18)


def closes(stem: str, end: date = AS_OF) -> dict[date, float]:
    with (SHARED_DATA / f"{stem}_daily.csv").open(newline="") as handle:
        rows = {
            date.fromisoformat(r["date"]): float(r["close"]) for r in csv.DictReader(handle) if r["close"]
        }
    return {d: v for d, v in rows.items() if d <= end}


def change(values: dict[date, float], since: date, end: date) -> float:
    last = max(d for d in values if d <= end)
    base = max(d for d in values if d <= since)
    return values[last] / values[base] - 1


async def ask(services: Services, text: str) -> answers.Answer:
    name, args = answers.parse_command_line(text)
    return await core.answer(answers.Request(name, args, services, chat_id=1, user_id=1))


@pytest.fixture
def june_2024(tmp_path: Path) -> Iterator[Services]:
    """Services as at the 3 Jun 2024 close: ^SP600 and ^MID end on 26 Mar 2024, the others go on."""
    source = CsvSource(SHARED_DATA, as_of=date(2024, 6, 3))
    services = build_services(make_config(tmp_path, f"csv:{SHARED_DATA}"), source=source, clock=source.now)
    services.market.ensure_loaded()
    yield services
    services.close()


@pytest.mark.parametrize(
    "text", ["/standing sp600 10y", "/standing sp600/spx 10y", "/standing 10y SP600 vs SPX"]
)
async def test_standing_compares_the_sp600_with_the_sp500(csv_services: Services, text: str) -> None:
    sp600, spx = closes("SP600"), closes("GSPC")
    a, b = change(sp600, date(2014, 1, 18), AS_OF), change(spx, date(2014, 1, 18), AS_OF)
    answer = plain((await ask(csv_services, text)).text)
    assert answer.startswith("S&P SmallCap 600 vs S&P 500 · 10Y")
    assert (
        f"lagged the S&P 500 by {abs(a - b) * 100:.1f} points ({a * 100:+.2f}% vs {b * 100:+.2f}%)" in answer
    )
    assert f"SP600 {sp600[AS_OF]:,.2f} (18 Jan 2024 close)" in answer
    assert "Compared on" not in answer  # both have the 18 Jan close


async def test_a_fund_alone_is_compared_with_spy(csv_services: Services) -> None:
    rsp, spy = closes("RSP"), closes("SPY")
    a, b = change(rsp, date(2019, 1, 18), AS_OF), change(spy, date(2019, 1, 18), AS_OF)
    text = plain((await ask(csv_services, "/standing rsp 5y")).text)
    assert text.startswith("Invesco S&P 500 Equal Weight ETF vs SPDR S&P 500 ETF Trust · 5Y")
    assert f"({a * 100:+.2f}% vs {b * 100:+.2f}%)" in text


async def test_instruments_ending_on_different_days_are_compared_on_the_last_close_both_have(
    june_2024: Services,
) -> None:
    end = date(2024, 3, 26)
    mid, spx = closes("MID", date(2024, 6, 3)), closes("GSPC", date(2024, 6, 3))
    a, b = change(mid, date(2023, 3, 26), end), change(spx, date(2023, 3, 26), end)
    answer = await ask(june_2024, "/standing mid 1y")
    text = plain(answer.text)
    assert f"MID {mid[end]:,.2f} (26 Mar 2024 close)" in text
    assert f"SPX {spx[date(2024, 6, 3)]:,.2f} (3 Jun 2024 close)" in text
    assert "Compared on 26 Mar 2024, the last close both have (newer closes: SPX to 3 Jun 2024)." in text
    assert f"({a * 100:+.2f}% vs {b * 100:+.2f}%)" in text
    assert "as of 26 Mar 2024 close" in text and "stale" in text
    # The headline pair keeps its own date.
    assert "as of 3 Jun 2024 close" in plain((await ask(june_2024, "/standing")).text)


async def test_standing_shows_each_index_against_its_200_day_average(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/standing")).text)
    for stem, short in (("RUT", "RUT"), ("GSPC", "SPX")):
        values = closes(stem)
        last200 = [values[d] for d in sorted(values)[-200:]]
        average = sum(last200) / 200
        distance = values[AS_OF] / average - 1
        side = "above" if distance >= 0 else "below"
        assert f"{short} {abs(distance) * 100:.2f}% {side} its 200-day average of {average:,.2f}" in text
    assert "RUT 4.57% above its 200-day average of 1,839.67" in text


async def test_the_ratio_shows_its_mean_since_1987_and_over_ten_years_with_z_scores(
    csv_services: Services,
) -> None:
    rut, spx = closes("RUT"), closes("GSPC")
    ratios = {d: rut[d] / spx[d] for d in sorted(rut) if d in spx}
    today = ratios[AS_OF]
    values = list(ratios.values())
    mean, spread = statistics.fmean(values), statistics.stdev(values)
    ten = [v for d, v in ratios.items() if (AS_OF - d).days < 3652]
    mean10, spread10 = statistics.fmean(ten), statistics.stdev(ten)
    text = plain((await ask(csv_services, "/standing")).text)
    expected = (
        f"Against its past: mean since 1987 {mean:.4f} (z {(today - mean) / spread:+.2f}); "
        f"mean over 10 years {mean10:.4f} (z {(today - mean10) / spread10:+.2f})."
    ).replace("-", "−")
    assert expected in text
    assert "mean since 1987 0.5083 (z −1.44)" in text
    assert f"RUT/SPX ratio {today:.4f}" in text


async def test_a_pair_gets_its_ratio_percentile_and_z_score(csv_services: Services) -> None:
    small, large = closes("SP600"), closes("GSPC")
    ratios = [small[d] / large[d] for d in sorted(small) if d in large]
    today = ratios[-1]
    share = sum(r <= today for r in ratios) / len(ratios) * 100
    z = (today - statistics.fmean(ratios)) / statistics.stdev(ratios)
    text = plain((await ask(csv_services, "/standing sp600/spx")).text)
    assert f"SP600/SPX ratio {today:.4f}: higher than on {share:.0f}% of days since 1989" in text
    assert f"mean since 1989 {statistics.fmean(ratios):.4f} (z {z:+.2f})".replace("-", "−") in text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/standing nasdaq", "I don't know the period “nasdaq”"),
        ("/standing nasdaq", "or name an instrument (rut, spx, sp600"),
        ("/standing spx", "Name something to compare the S&P 500 with"),
        ("/standing rut spx iwm", "compares two instruments"),
        ("/chart 5y sp600/nasdaq", "I don't know the instrument “nasdaq”"),
    ],
)
async def test_a_bad_instrument_gets_a_specific_reply(csv_services: Services, text: str, says: str) -> None:
    assert says in plain((await ask(csv_services, text)).text)


async def test_chart_takes_a_pair_and_draws_it(csv_services: Services) -> None:
    sp600, spx = closes("SP600"), closes("GSPC")
    answer = await ask(csv_services, "/chart sp600/spx 10y")
    assert answer.photo is not None and answer.photo.startswith(b"\x89PNG")
    caption = plain(answer.text)
    assert "S&P SmallCap 600 vs S&P 500 · 10Y, rebased to 100, with each one's 200-day average" in caption
    a, b = change(sp600, date(2014, 1, 18), AS_OF), change(spx, date(2014, 1, 18), AS_OF)
    assert f"SP600 {a * 100:+.2f}% · SPX {b * 100:+.2f}%" in caption
    assert answer.photo_name == "capgap-10y-sp600-gspc.png"
    assert {b.data for row in answer.keyboard for b in row} >= {"chart:5y:sp600/spx", "chart:max:sp600/spx"}


async def test_chart_ratio_draws_the_ratio_with_its_mean_and_bands(csv_services: Services) -> None:
    answer = await ask(csv_services, "/chart ratio 20y")
    assert answer.photo is not None and answer.photo.startswith(b"\x89PNG")
    caption = plain(answer.text)
    assert caption.startswith("RUT/SPX ratio · 20Y, with its mean and 10th–90th percentiles")
    assert "mean since 1987 0.5083 (z −1.44)" in caption
    pair = plain((await ask(csv_services, "/chart ratio rsp/spy 10y")).text)
    assert pair.startswith("RSP/SPY ratio · 10Y")


def test_average_distance_is_none_until_the_window_is_full_and_then_close_over_average() -> None:
    import pandas as pd

    from market.metrics import average_distance, price_ratio

    days = pd.bdate_range("2024-01-01", periods=4)
    values = pd.Series([10.0, 12.0, 14.0, 16.0], index=days)
    assert average_distance(values, 5) is None
    mark = average_distance(values, 4)
    assert mark is not None and mark.average == 13.0 and mark.distance == pytest.approx(16.0 / 13.0 - 1)
    assert mark.day == days[-1].date()
    other = pd.Series([5.0, float("nan"), 7.0, 8.0], index=days)
    assert price_ratio(values, other).to_list() == [2.0, 2.0, 2.0]
