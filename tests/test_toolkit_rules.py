"""Rules on moving averages, the golden cross, the ratio's z-score and mean, moves over a window and
combined conditions, replayed over the real history with the real evaluation.

Every expected date is computed here from the CSV files with the csv module and plain Python sums (no
pandas rolling windows, no capgap code), then run through ``testing.alerts_oracle.crossing_dates``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import cache

import pandas as pd
import pytest

from alerts.observations import derived_series, live_observations
from alerts.replay import replay
from alerts.rules import RuleError, parse_rule, parse_rules_for_storage
from bot import answers, core
from bot.format import plain
from bot.services import Services
from testing.alerts_oracle import crossing_dates
from testing.world import SHARED_DATA
from tests.conftest import RunningBot

START, END = date(2023, 1, 19), date(2024, 1, 18)  # the year to 18 Jan 2024

Series = list[tuple[date, float]]


@cache
def csv_column(stem: str, column: str) -> tuple[tuple[date, float], ...]:
    """(date, value) of ``column`` in ``<stem>_daily.csv``, read with the csv module; blanks skipped."""
    with (SHARED_DATA / f"{stem}_daily.csv").open(newline="") as handle:
        return tuple(
            (date.fromisoformat(row["date"]), float(row[column]))
            for row in csv.DictReader(handle)
            if row[column] and float(row[column]) > 0
        )


def csv_closes(stem: str) -> tuple[tuple[date, float], ...]:
    return csv_column(stem, "close")


def up_to(series: Series | tuple[tuple[date, float], ...], end: date = END) -> Series:
    return [(day, value) for day, value in series if day <= end]


def average(values: Series, sessions: int) -> Series:
    """The simple average of the last ``sessions`` values on each date that has that many."""
    out, total = [], 0.0
    for i, (day, value) in enumerate(values):
        total += value
        if i >= sessions:
            total -= values[i - sessions][1]
        if i >= sessions - 1:
            out.append((day, total / sessions))
    return out


def divided(top: Series, bottom: Series) -> Series:
    by_day = dict(bottom)
    return [(day, value / by_day[day]) for day, value in top if day in by_day]


def ratio() -> Series:
    return divided(up_to(csv_closes("RUT")), up_to(csv_closes("GSPC")))


def z_scores(values: Series, minimum: int = 250) -> Series:
    """(value − mean) ÷ sample standard deviation over every value up to and including each date."""
    out, total, squares = [], 0.0, 0.0
    for n, (day, value) in enumerate(values, start=1):
        total += value
        squares += value * value
        if n >= minimum:
            mean = total / n
            variance = (squares - n * mean * mean) / (n - 1)
            out.append((day, (value - mean) / math.sqrt(variance)))
    return out


def replayed(text: str, closes: pd.DataFrame) -> list[date]:
    return [alert.session for alert in replay([parse_rule(text)], closes, START, END)]


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            symbol: pd.Series(dict(csv_closes(symbol.lstrip("^"))))
            for symbol in ("^RUT", "^GSPC", "IWM", "SPY")
        }
    )
    frame.index = pd.DatetimeIndex(frame.index)
    return frame.sort_index().loc[: pd.Timestamp(END)]


# --- the price against its 200-day average --------------------------------------------------------------


def rut_over_ma200() -> Series:
    rut = up_to(csv_closes("RUT"))
    return divided(rut, average(rut, 200))


def test_rut_sits_4_57_percent_above_its_200_day_average_on_18_jan_2024():
    rut = up_to(csv_closes("RUT"))
    ma200 = dict(average(rut, 200))[END]
    assert rut[-1] == (END, pytest.approx(1923.65, abs=0.005))
    assert ma200 == pytest.approx(1839.67, abs=0.005)
    derived = derived_series(closes_frame(), ["^RUT:ma200"])["^RUT:ma200"]
    assert derived.loc[pd.Timestamp(END)] == pytest.approx(rut[-1][1] / ma200, rel=1e-12)
    assert (rut[-1][1] / ma200 - 1) * 100 == pytest.approx(4.57, abs=0.005)


def closes_frame() -> pd.DataFrame:
    frame = pd.DataFrame({"^RUT": pd.Series(dict(up_to(csv_closes("RUT"))))})
    frame.index = pd.DatetimeIndex(frame.index)
    return frame


def test_rut_crossed_its_200_day_average_at_the_close_8_times_in_the_year_to_18_jan_2024():
    """The whipsaw of 2, 5 and 6 June 2023 is among them: three crossings in three sessions."""
    values = rut_over_ma200()
    sides = [(day, value >= 1) for day, value in values if day >= START]
    before = [value >= 1 for day, value in values if day < START][-1]
    changes, previous = [], before
    for day, above in sides:
        if above != previous:
            changes.append(day)
        previous = above
    assert len(changes) == 8
    assert {date(2023, 6, 2), date(2023, 6, 5), date(2023, 6, 6)} <= set(changes)


def test_cross_ma200_with_a_tiny_band_fires_at_every_crossing(closes: pd.DataFrame):
    values = rut_over_ma200()
    expected = sorted(
        crossing_dates(values, START, 1.0, 0.001, "above")
        + crossing_dates(values, START, 1.0, 0.001, "below")
    )
    assert len(expected) == 8
    assert replayed("rut cross ma200 band 0.1%", closes) == expected


def test_the_default_1_percent_band_keeps_the_june_whipsaw_to_one_alert(closes: pd.DataFrame):
    values = rut_over_ma200()
    expected = sorted(
        crossing_dates(values, START, 1.0, 0.01, "above") + crossing_dates(values, START, 1.0, 0.01, "below")
    )
    fired = replayed("rut cross ma200", closes)
    assert fired == expected
    june = [day for day in fired if date(2023, 6, 1) <= day <= date(2023, 6, 30)]
    assert june == [date(2023, 6, 2)]
    assert len(fired) == 5


def test_rut_above_ma50_fires_on_the_upward_crossings_of_the_50_day_average(closes: pd.DataFrame):
    rut = up_to(csv_closes("RUT"))
    expected = crossing_dates(divided(rut, average(rut, 50)), START, 1.0, 0.01, "above")
    assert expected  # the Russell rose through its 50-day average in that year
    assert replayed("rut above ma50", closes) == expected


# --- the golden and death cross -------------------------------------------------------------------------


def test_the_golden_and_death_crosses_of_the_russell_match_the_averages_computed_by_hand(
    closes: pd.DataFrame,
):
    rut = up_to(csv_closes("RUT"))
    fast_over_slow = divided(average(rut, 50), average(rut, 200))
    golden = crossing_dates(fast_over_slow, START, 1.0, 0.01, "above")
    death = crossing_dates(fast_over_slow, START, 1.0, 0.01, "below")
    assert golden and death
    assert replayed("rut ma50 above ma200", closes) == golden
    assert replayed("rut ma50 below ma200", closes) == death
    assert replayed("rut ma50 cross ma200", closes) == sorted(golden + death)


def test_the_ratio_against_its_own_200_day_average(closes: pd.DataFrame):
    values = ratio()
    expected = crossing_dates(divided(values, average(values, 200)), START, 1.0, 0.01, "below")
    assert replayed("ratio below ma200", closes) == expected


# --- the ratio against its history ----------------------------------------------------------------------


def test_ratio_z_below_minus_1_5_fires_when_the_z_score_since_1987_reaches_it(closes: pd.DataFrame):
    scores = z_scores(ratio())
    assert dict(scores)[END] == pytest.approx(-1.444, abs=0.001)
    expected = crossing_dates(scores, START, -1.5, 0.05, "below")
    assert expected
    assert replayed("ratio z below -1.5", closes) == expected


def test_ratio_cross_mean_never_fired_in_a_year_spent_far_below_the_mean(closes: pd.DataFrame):
    values = ratio()
    totals = [0.0]
    for _, value in values:
        totals.append(totals[-1] + value)
    over_mean = [
        (day, value / (totals[n + 1] / (n + 1))) for n, (day, value) in enumerate(values) if n >= 249
    ]
    assert max(v for d, v in over_mean if d >= START) < 1.0  # never back up to its mean
    assert replayed("ratio cross mean", closes) == []
    since_2010 = date(2010, 1, 1)
    expected = sorted(
        crossing_dates(over_mean, since_2010, 1.0, 0.01, "above")
        + crossing_dates(over_mean, since_2010, 1.0, 0.01, "below")
    )
    got = [a.session for a in replay([parse_rule("ratio cross mean")], closes, since_2010, END)]
    assert len(expected) >= 5
    assert got == expected


# --- a move over a window -------------------------------------------------------------------------------


def one_week_changes() -> Series:
    """The percent change to each close from the last close on or before the same weekday a week earlier."""
    rut = up_to(csv_closes("RUT"))
    out = []
    for i, (day, close) in enumerate(rut):
        target = day - timedelta(days=7)
        earlier = [value for d, value in rut[max(0, i - 10) : i] if d <= target]
        if earlier:
            out.append((day, (close / earlier[-1] - 1) * 100))
    return out


def test_rut_move_5_percent_over_a_week_fires_on_rises_and_falls_past_5(closes: pd.DataFrame):
    changes = one_week_changes()
    rises = crossing_dates(changes, START, 5.0, 0.01, "above")
    falls = crossing_dates(changes, START, -5.0, 0.01, "below")
    assert rises and falls
    assert replayed("rut move 5% 1w", closes) == sorted(rises + falls)


# --- combined conditions --------------------------------------------------------------------------------


def test_rut_above_ma200_and_ratio_below_0_41_fires_when_both_become_true_together(closes: pd.DataFrame):
    above = dict(rut_over_ma200())
    both = [
        (day, 1.0 if above[day] >= 1 and value <= 0.41 else 0.0) for day, value in ratio() if day in above
    ]
    expected = crossing_dates(both, START, 1.0, 0.01, "above")
    assert expected == [date(2023, 12, 1), date(2023, 12, 5), date(2024, 1, 11)]
    assert replayed("rut above ma200 and ratio below 0.41", closes) == expected


def test_three_clauses_fire_only_when_the_third_holds_too(closes: pd.DataFrame):
    above = dict(rut_over_ma200())
    rut = dict(up_to(csv_closes("RUT")))
    both = [
        (day, 1.0 if above[day] >= 1 and value <= 0.41 and rut[day] >= 1950 else 0.0)
        for day, value in ratio()
        if day in above
    ]
    expected = crossing_dates(both, START, 1.0, 0.01, "above")
    got = replayed("rut above ma200 and ratio below 0.41 and rut above 1950", closes)
    assert got == expected
    assert set(got) < {date(2023, 12, 1), date(2023, 12, 5), date(2024, 1, 11)}


# --- live values -----------------------------------------------------------------------------------------


KEYS = (
    "^RUT:ma200",
    "^RUT:ma50/ma200",
    "RATIO:ma200",
    "RATIO:z",
    "RATIO:mean",
    "^RUT:move:1w",
    "RATIO:IWM/SPY",
    "RATIO:IWM/SPY:z",
    "ALL:^RUT:ma200>1.0&RATIO<0.41",
)


def test_a_live_value_is_the_close_value_the_same_prices_would_give(closes: pd.DataFrame):
    before = closes.loc[: pd.Timestamp(END) - pd.Timedelta(days=1)]
    moment = datetime(2024, 1, 18, 20, 0, tzinfo=UTC)
    row = closes.loc[pd.Timestamp(END)]
    quotes = {symbol: (float(row[symbol]), moment) for symbol in closes.columns}
    live = live_observations(before, quotes, END, keys=KEYS, now=moment)
    at_close = derived_series(closes, KEYS).loc[pd.Timestamp(END)]
    for key in KEYS:
        assert live[key].value == pytest.approx(float(at_close[key]), rel=1e-9), key
        assert not live[key].stale


def test_a_combined_value_is_stale_when_one_clause_is(closes: pd.DataFrame):
    before = closes.loc[: pd.Timestamp(END) - pd.Timedelta(days=1)]
    now = datetime(2024, 1, 18, 20, 0, tzinfo=UTC)
    row = closes.loc[pd.Timestamp(END)]
    quotes = {"^RUT": (float(row["^RUT"]), now), "^GSPC": (float(row["^GSPC"]), now - timedelta(hours=2))}
    live = live_observations(before, quotes, END, keys=["ALL:^RUT:ma200>1.0&RATIO<0.41"], now=now)
    assert live["ALL:^RUT:ma200>1.0&RATIO<0.41"].stale


# --- the grammar ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical", "key"),
    [
        ("rut cross ma200", "RUT cross ma200 · close · band 1%", "^RUT:ma200"),
        ("Russell 2000 above MA50", "RUT above ma50 · close · band 1%", "^RUT:ma50"),
        ("rut ma50 cross ma200", "RUT ma50 cross ma200 · close · band 1%", "^RUT:ma50/ma200"),
        ("ratio below ma200", "ratio below ma200 · close · band 1%", "RATIO:ma200"),
        ("ratio z below -1.5", "ratio z below -1.5 · close · band 5%", "RATIO:z"),
        ("ratio cross mean", "ratio cross mean · close · band 1%", "RATIO:mean"),
        ("rut move 5% 1w", "RUT move 5% 1w · close · band 1%", "^RUT:move:1w"),
        ("iwm/spy below 0.1", "IWM/SPY below 0.1 · live · band 1%", "RATIO:IWM/SPY"),
        ("rut/spx below 0.4", "ratio below 0.4 · live · band 1%", "RATIO"),
        (
            "rut above ma200 and ratio below 0.40",
            "RUT above ma200 and ratio below 0.4 · close",
            "ALL:^RUT:ma200>1.0&RATIO<0.4",
        ),
        (
            "rut above 2000 and spx below 5000",
            "SPX below 5,000 and RUT above 2,000 · live",
            "ALL:^GSPC<5000.0&^RUT>2000.0",
        ),
    ],
)
def test_each_new_rule_reads_back_from_its_canonical_text(text: str, canonical: str, key: str):
    spec = parse_rule(text)
    assert spec.canonical == canonical
    assert spec.key == key
    assert parse_rule(spec.canonical) == spec


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rut cross ma2000", "5 to 400 sessions"),
        ("rut ma50 cross 3000", "compared with another average"),
        ("rut ma50 cross ma50", "the same average"),
        ("rut above mean", "a ratio's long-run mean"),
        ("ratio z below 0", "the mean itself"),
        ("ratio z below -9", "between -5 and 5"),
        ("rut move 5% 2d", 'Unknown window "2d"'),
        ("rut cross ma200 and ratio below 0.4", "'above' or 'below'"),
        ("gap above 40 and rut above 2000", "cannot be combined"),
        ("rut move 2% and ratio below 0.4", "A move cannot be combined"),
        ("rut above 1 and spx above 1 and iwm above 1 and spy above 1", "at most 3 conditions"),
        ("rut above 2000 and", "on each side of 'and'"),
        ("rut above 2000 and rut above 2100", "the same value"),
        ("rut above ma200 close and ratio below 0.4", "after the last condition"),
        ("rut above ma200 and ratio below 0.4 band 2%", "does not apply to a combined rule"),
        ("foo/spx above 1", '"foo" is not one of'),
        ("rut/rut above 1", "by itself"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_with_the_reason(text: str, says: str):
    with pytest.raises(RuleError, match=re.escape(says)):
        parse_rule(text)


def test_a_move_over_a_window_is_stored_as_a_rise_and_a_fall():
    rows = parse_rules_for_storage(parse_rule("rut move 5% 1w"))
    assert [(row["kind"], row["level"]) for row in rows] == [("above", 5.0), ("below", -5.0)]


def describe(text: str) -> str:
    return parse_rule(text).describe()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rut ma50 cross ma200", "golden cross upward, death cross downward"),
        ("rut cross ma200", "crosses its 200-day average, either way"),
        ("ratio z below -1.5", "z-score of the Russell 2000 / S&P 500 price ratio"),
        ("rut above ma200 and ratio below 0.4", "when all of these hold together"),
        ("rut move 5% 1w", "up or down 5% or more over 1 week"),
    ],
)
def test_each_new_rule_says_what_it_watches(text: str, words: str):
    assert words in describe(text)


# --- through /alert -----------------------------------------------------------------------------------


async def ask(services: Services, text: str, chat_id: int = 77) -> str:
    name, args = answers.parse_command_line(text)
    answer = await core.answer(answers.Request(name, args, services, chat_id=chat_id, user_id=chat_id))
    return plain(answer.text)


def long_day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


async def test_alert_rut_cross_ma200_states_the_distance_now_and_the_five_crossings_of_the_year(
    csv_services: Services,
) -> None:
    rut = up_to(csv_closes("RUT"))
    distance = (rut[-1][1] / dict(average(rut, 200))[END] - 1) * 100
    values = rut_over_ma200()
    fired = sorted(
        crossing_dates(values, START, 1.0, 0.01, "above") + crossing_dates(values, START, 1.0, 0.01, "below")
    )
    text = await ask(csv_services, "/alert rut cross ma200")
    assert "Alert #1 set: RUT cross ma200 · close · band 1%" in text
    assert f"Now: {distance:+.2f}% from its average (close, 18 Jan 2024)" in text
    assert f"it would have fired {len(fired)} times at the close: " + ", ".join(map(long_day, fired)) in text


async def test_alert_with_two_conditions_shows_each_one_now_and_waits_because_both_hold(
    csv_services: Services,
) -> None:
    rut = up_to(csv_closes("RUT"))
    distance = (rut[-1][1] / dict(average(rut, 200))[END] - 1) * 100
    now_ratio = ratio()[-1][1]
    text = await ask(csv_services, "/alert rut above ma200 and ratio below 0.41")
    assert "RUT above ma200 and ratio below 0.41 · close" in text
    assert (f"Now: RUT {distance:+.2f}% from its average; ratio {now_ratio:.4f} (close, 18 Jan 2024)") in text
    assert "All of its conditions hold already: you will be told on the next crossing" in text
    assert "it would have fired 3 times at the close: 1 Dec 2023, 5 Dec 2023, 11 Jan 2024" in text


async def test_the_guide_offers_the_golden_cross_as_one_button(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    await running_bot.ask(77, "/alert")
    message = emu.sent_to(77)[-1]
    emu.press_button(77, message.message_id, "alert:rut")
    await emu.wait_for(chat_id=77, method="editMessageText")
    offered = [
        b["callback_data"] for row in emu.chat_messages(77)[-1].reply_markup["inline_keyboard"] for b in row
    ]
    assert "alert:rut ma50 cross ma200" in offered
    emu.press_button(77, message.message_id, "alert:rut ma50 cross ma200")
    await emu.wait_for(chat_id=77, method="editMessageText")
    assert "Alert #1 set: RUT ma50 cross ma200 · close · band 1%" in emu.chat_messages(77)[-1].plain_text


# --- the lead on total returns --------------------------------------------------------------------------


def csv_adjusted(stem: str) -> tuple[tuple[date, float], ...]:
    return csv_column(stem, "adj_close")


def months_before(day: date, months: int) -> date:
    """The same calendar date ``months`` earlier, the day clipped to that month's end."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    return min(
        day.replace(year=year, month=month, day=1) + timedelta(days=day.day - 1),
        following - timedelta(days=1),
    )


def three_month_returns(values: Series) -> dict[date, float]:
    out = {}
    for day, value in values:
        base = [v for d, v in values if d <= months_before(day, 3)]
        if base:
            out[day] = value / base[-1] - 1
    return out


def test_lead_tr_fires_when_iwm_total_return_over_3_months_trails_spys_by_5_points():
    """IWM's and SPY's total returns from their adjusted closes, the 3-month base found by hand."""
    span = date(2022, 9, 1)
    iwm = [(d, v) for d, v in csv_adjusted("IWM") if span <= d <= END]
    spy = [(d, v) for d, v in csv_adjusted("SPY") if span <= d <= END]
    small, large = three_month_returns(iwm), three_month_returns(spy)
    lead = [(day, (small[day] - large[day]) * 100) for day, _ in iwm if day in small and day in large]
    expected = crossing_dates(lead, START, -5.0, 0.01, "below")
    assert expected

    def frame(read: Callable[[str], tuple[tuple[date, float], ...]]) -> pd.DataFrame:
        columns = {
            symbol: pd.Series(dict(read(symbol.lstrip("^")))) for symbol in ("^RUT", "^GSPC", "IWM", "SPY")
        }
        table = pd.DataFrame(columns)
        table.index = pd.DatetimeIndex(table.index)
        return table.sort_index().loc[: pd.Timestamp(END)]

    closes = frame(csv_closes)
    adjusted = frame(csv_adjusted)[["IWM", "SPY"]]
    fired = replay([parse_rule("lead -5% 3m tr")], closes, START, END, adjusted=adjusted)
    assert [alert.session for alert in fired] == expected
    price_only = replay([parse_rule("lead -5% 3m")], closes, START, END)
    assert [a.value for a in fired] != [a.value for a in price_only[: len(fired)]]


def test_a_total_return_lead_is_judged_at_the_close_only():
    spec = parse_rule("lead -5% 3m tr")
    assert spec.canonical == "lead -5% 3m tr · close · band 1%"
    assert spec.key == "LEAD:3m:tr"
    assert parse_rule(spec.canonical) == spec
    assert "dividends included" in spec.describe()
    with pytest.raises(RuleError, match="drop 'live'"):
        parse_rule("lead -5% 3m tr live")


def test_a_pair_of_any_two_instruments_crosses_its_long_run_mean_when_computed_by_hand():
    """S&P 600 / S&P 500, its mean over every day since 1989 (no look-ahead), crossed either way."""
    values = divided(up_to(csv_closes("SP600")), up_to(csv_closes("GSPC")))
    totals = [0.0]
    for _, value in values:
        totals.append(totals[-1] + value)
    over_mean = [
        (day, value / (totals[n + 1] / (n + 1))) for n, (day, value) in enumerate(values) if n >= 249
    ]
    expected = sorted(
        crossing_dates(over_mean, START, 1.0, 0.01, "above")
        + crossing_dates(over_mean, START, 1.0, 0.01, "below")
    )
    assert len(expected) == 5  # October and November 2023, around the mean
    frame = pd.DataFrame(
        {"^SP600": pd.Series(dict(csv_closes("SP600"))), "^GSPC": pd.Series(dict(csv_closes("GSPC")))}
    )
    frame.index = pd.DatetimeIndex(frame.index)
    spec = parse_rule("sp600/spx cross mean")
    assert spec.mode == "close"  # the S&P 600 is read once a day
    fired = replay([spec], frame.sort_index().loc[: pd.Timestamp(END)], START, END)
    assert [alert.session for alert in fired] == expected


def test_a_combination_is_unknown_while_one_condition_is_even_if_another_is_false():
    index = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"])
    frame = pd.DataFrame(
        {
            "^RUT": [2000.0, 1900.0, 2100.0],
            "^GSPC": [4000.0, 5000.0, 5000.0],
            "IWM": [float("nan"), 190.0, 210.0],
        },
        index=index,
    )
    combined = derived_series(frame, ["ALL:^RUT>1950.0&IWM>200.0"])["ALL:^RUT>1950.0&IWM>200.0"]
    assert math.isnan(combined.iloc[0])  # RUT holds, IWM unknown: unknown, so nothing re-arms or fires
    assert combined.iloc[1:].tolist() == [0.0, 1.0]


def test_a_drawdown_condition_is_at_or_above_its_level_as_its_description_says():
    spec = parse_rule("rut drawdown 10% and ratio below 0.40")
    assert spec.key == "ALL:^RUT:drawdown>10.0&RATIO<0.4"
    index = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"])
    # RUT 25% below its high with the ratio at 0.375; then back at a new high.
    frame = pd.DataFrame({"^RUT": [2000.0, 1500.0, 2100.0], "^GSPC": [4000.0, 4000.0, 4000.0]}, index=index)
    assert derived_series(frame, [spec.key])[spec.key].tolist() == [0.0, 1.0, 0.0]


def test_the_same_conditions_in_another_order_are_the_same_rule():
    one = parse_rule("rut above ma200 and ratio below 0.4")
    other = parse_rule("ratio below 0.4 and rut above ma200")
    assert one == other
    assert one.canonical == "RUT above ma200 and ratio below 0.4 · close"


@pytest.mark.parametrize("text", ["rut above ma0050", "rut above ma050"])
def test_an_average_written_with_leading_zeros_is_the_same_average(text: str):
    spec = parse_rule(text)
    assert spec == parse_rule("rut above ma50")
    assert spec.key == "^RUT:ma50"
    with pytest.raises(RuleError, match="the same value"):
        parse_rule(f"{text} and rut below ma50")


def test_live_is_refused_for_a_combination_with_a_total_return_lead():
    with pytest.raises(RuleError, match="drop 'live'"):
        parse_rule("rut above 2000 and lead 5% 3m tr live")
