"""Total return: the funds' adjusted closes from source to cache to answer, and the figures they give."""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot import answers, core
from bot.commands import standing
from bot.format import plain
from bot.services import Services
from database.connection import open_database
from market import metrics
from market.cache import MarketCache
from market.csv_source import CsvSource
from market.model import MarketData
from market.plausibility import screen_adjusted
from testing.world import SHARED_DATA

AS_OF = date(2024, 1, 18)


def adjusted(stem: str, end: date = AS_OF) -> dict[date, float]:
    with (SHARED_DATA / f"{stem}_daily.csv").open(newline="") as handle:
        rows = {
            date.fromisoformat(r["date"]): float(r["adj_close"])
            for r in csv.DictReader(handle)
            if r["adj_close"]
        }
    return {d: v for d, v in rows.items() if d <= end}


def by_hand(values: dict[date, float], since: date, end: date | None = None) -> float:
    """The return from the last value on or before ``since`` to the last on or before ``end``."""
    last = max(d for d in values if end is None or d <= end)
    base = max(d for d in values if d <= since)
    return values[last] / values[base] - 1


def series(values: dict[date, float]) -> pd.Series:
    return pd.Series(list(values.values()), index=pd.DatetimeIndex(list(values)), dtype="float64")


async def ask(services: Services, text: str) -> answers.Answer:
    name, args = answers.parse_command_line(text)
    return await core.answer(answers.Request(name, args, services, chat_id=1, user_id=1))


def test_iwm_and_spy_total_returns_over_ten_years_to_18_jan_2024() -> None:
    iwm, spy = adjusted("IWM"), adjusted("SPY")
    result = metrics.total_returns({"IWM": series(iwm), "SPY": series(spy)}, "10y")
    assert result.as_of == AS_OF
    assert result.returns["IWM"] == pytest.approx(by_hand(iwm, date(2014, 1, 18)), rel=1e-12)
    assert result.returns["SPY"] == pytest.approx(by_hand(spy, date(2014, 1, 18)), rel=1e-12)
    assert f"{result.returns['IWM'] * 100:+.2f}" == "+88.00"
    assert f"{result.returns['SPY'] * 100:+.2f}" == "+210.88"
    assert result.inception == {"IWM": date(2000, 5, 26), "SPY": date(1993, 1, 29)}


def test_funds_are_measured_to_the_last_day_both_have_and_not_before_inception() -> None:
    vtwo, voo = adjusted("VTWO"), adjusted("VOO")  # VTWO's file ends on 14 Apr 2023
    result = metrics.total_returns({"VTWO": series(vtwo), "VOO": series(voo)}, "10y")
    assert result.as_of == date(2023, 4, 14)
    assert result.returns["VOO"] == pytest.approx(by_hand(voo, date(2013, 4, 14), date(2023, 4, 14)))
    twenty = metrics.total_returns({"VTWO": series(vtwo), "VOO": series(voo)}, "20y")
    assert twenty.returns == {"VTWO": None, "VOO": None}  # both began in September 2010
    everything = metrics.total_returns({"VTWO": series(vtwo), "VOO": series(voo)}, "max")
    first_shared = date(2010, 9, 22)
    assert everything.returns["VOO"] == pytest.approx(by_hand(voo, first_shared, date(2023, 4, 14)))


def test_adjusted_closes_reach_the_snapshot_for_funds_only(csv_services: Services) -> None:
    snapshot = csv_services.market.snapshot
    assert snapshot.adjusted is not None
    assert set(snapshot.adjusted.columns) == {
        "IWM",
        "VTWO",
        "SPY",
        "VOO",
        "IVV",
        "IJR",
        "IJH",
        "MDY",
        "RSP",
        "IWB",
        "IWN",
    }
    assert snapshot.adjusted.index.equals(snapshot.closes.index)
    iwm = adjusted("IWM")
    stored = snapshot.adjusted_series("IWM")
    assert len(stored) == len(iwm)
    assert float(stored.loc["2014-01-17"]) == pytest.approx(iwm[date(2014, 1, 17)], rel=1e-12)
    assert snapshot.adjusted_series("^RUT").empty


def test_a_newer_basis_rescales_the_cached_adjusted_closes_so_returns_survive_the_seam(
    cache: MarketCache,
) -> None:
    days = pd.DatetimeIndex(["2024-01-16", "2024-01-17", "2024-01-18", "2024-01-19"])
    closes = pd.DataFrame({"IWM": [190.0, 188.0, 191.0, 193.0]}, index=days)
    first = pd.DataFrame({"IWM": [180.0, 178.1, 181.0, np.nan]}, index=days)
    fetched = datetime(2024, 1, 19, 22, tzinfo=UTC)
    cache.store(MarketData(closes.iloc[:3], {}, "test", fetched, adjusted=first.iloc[:3]), None)
    # A dividend went ex after the first fetch: the new fetch's whole Adj Close history is 1% lower.
    second = pd.DataFrame({"IWM": [176.319, 179.19, 182.0]}, index=days[1:])
    cache.store(MarketData(closes.iloc[1:], {}, "test", fetched, adjusted=second), None)
    stored = cache.snapshot().adjusted_series("IWM")
    assert stored.to_list() == pytest.approx([178.2, 176.319, 179.19, 182.0])
    assert stored.iloc[1] / stored.iloc[0] == pytest.approx(178.1 / 180.0)


@pytest.mark.parametrize("where", ["file", "memory"])
def test_a_day_the_fetch_has_no_adjusted_close_for_keeps_the_cached_one_on_the_new_basis(
    where: str, db_path: Path
) -> None:
    """The second fetch is on a basis 1% lower and has no adjusted close for 18 Jan (the screen left it
    out): the cached 18 Jan value stays, brought onto the new basis, instead of becoming a gap. On a file
    (the bot) and in memory (`capgap ask`) alike."""
    db = open_database(db_path if where == "file" else ":memory:")
    try:
        cache = MarketCache(db)
        days = pd.DatetimeIndex(["2024-01-16", "2024-01-17", "2024-01-18", "2024-01-19"])
        closes = pd.DataFrame({"IWM": [190.0, 188.0, 191.0, 193.0]}, index=days)
        first = pd.DataFrame({"IWM": [180.0, 178.0, 181.0, 183.0]}, index=days)
        fetched = datetime(2024, 1, 19, 22, tzinfo=UTC)
        cache.store(MarketData(closes, {}, "test", fetched, adjusted=first), None)
        factor = 176.22 / 178.0
        second = pd.DataFrame({"IWM": [176.22, np.nan, 181.17]}, index=days[1:])
        cache.store(MarketData(closes.iloc[1:], {}, "test", fetched, adjusted=second), None)
        assert cache.snapshot().adjusted_series("IWM").to_list() == pytest.approx(
            [180.0 * factor, 176.22, 181.0 * factor, 181.17]
        )
        # The same basis again, still without 18 Jan: nothing moves.
        cache.store(MarketData(closes.iloc[1:], {}, "test", fetched, adjusted=second), None)
        assert cache.snapshot().adjusted_series("IWM").to_list() == pytest.approx(
            [180.0 * factor, 176.22, 181.0 * factor, 181.17]
        )
    finally:
        db.close()


def test_an_adjusted_close_above_its_close_or_with_a_falling_dividend_factor_is_left_out() -> None:
    days = pd.DatetimeIndex(["2024-01-16", "2024-01-17", "2024-01-18", "2024-01-19"])
    closes = pd.DataFrame({"IWM": [100.0, 100.0, 100.0, 100.0]}, index=days)
    raw = pd.DataFrame({"IWM": [98.0, 101.0, 97.0, 98.5]}, index=days)
    kept, dropped = screen_adjusted(closes, raw)
    assert dropped == 2  # 101 is above the close; 97 would mean a dividend factor falling with time
    assert kept["IWM"].to_list()[0] == 98.0 and kept["IWM"].to_list()[3] == 98.5
    assert np.isnan(kept["IWM"].to_list()[1]) and np.isnan(kept["IWM"].to_list()[2])


def test_every_adjusted_close_in_the_shared_history_is_plausible() -> None:
    data = CsvSource(SHARED_DATA).fetch(["IWM", "SPY", "IJR", "MDY", "RSP", "IWN"])
    _, dropped = screen_adjusted(data.closes, data.adjusted)
    assert dropped == 0


async def test_standing_tr_shows_total_returns_labelled_as_such_with_the_price_gap_beside(
    csv_services: Services,
) -> None:
    iwm, spy = adjusted("IWM"), adjusted("SPY")
    r_iwm, r_spy = by_hand(iwm, date(2014, 1, 18)), by_hand(spy, date(2014, 1, 18))
    answer = await ask(csv_services, "/standing tr 10y")
    text = plain(answer.text)
    assert text.startswith("Total return · 10Y")
    assert "dividends reinvested" in text
    assert (
        f"IWM lagged SPY by {abs(r_iwm - r_spy) * 100:.1f} points in total return "
        f"({r_iwm * 100:+.2f}% vs {r_spy * 100:+.2f}%)"
    ) in text
    assert "by 122.9 points in total return (+88.00% vs +210.88%)" in text
    assert "measured to 18 Jan 2024, the last adjusted close both have; IWM from 26 May 2000" in text
    vtwo, voo = adjusted("VTWO"), adjusted("VOO")
    r_vtwo, r_voo = by_hand(vtwo, date(2013, 4, 14)), by_hand(voo, date(2013, 4, 14), date(2023, 4, 14))
    assert f"({r_vtwo * 100:+.2f}% vs {r_voo * 100:+.2f}%)" in text
    assert "measured to 14 Apr 2023, the last adjusted close both have" in text
    assert "In price terms (the indices, no dividends) RUT−SPX: -95.4 pts." in text
    labels = {b.label: b.data for row in answer.keyboard for b in row}
    assert labels["Price"] == "standing:10y" and labels["• Total return •"] == "standing:10y:tr"


async def test_a_period_longer_than_a_funds_history_says_so(csv_services: Services) -> None:
    text = plain((await ask(csv_services, "/standing tr 20y")).text)
    assert (
        "VTWO vs VOO: 20Y reaches back before the fund's first close (VTWO from 22 Sep 2010, VOO from 9 Sep 2010"
        in text
    )
    iwm = adjusted("IWM")
    assert f"{by_hand(iwm, date(2004, 1, 18)) * 100:+.2f}%" in text


async def test_the_total_return_of_a_pair_uses_the_funds_that_hold_its_indices(
    csv_services: Services,
) -> None:
    ijr, spy = adjusted("IJR"), adjusted("SPY")
    text = plain((await ask(csv_services, "/standing sp600 tr 5y")).text)
    assert text.startswith("Total return: IJR vs SPY · 5Y")
    assert (
        f"({by_hand(ijr, date(2019, 1, 18)) * 100:+.2f}% vs {by_hand(spy, date(2019, 1, 18)) * 100:+.2f}%)"
        in text
    )


async def test_the_total_return_button_switches_the_standing_answer_in_place(csv_services: Services) -> None:
    price = await ask(csv_services, "/standing sp600 10y")
    data = {b.label: b.data for row in price.keyboard for b in row}["Total return"]
    assert data == "standing:10y:tr:sp600/spx"
    (flow,) = [f for f in standing.BUTTONS if f.prefix == "standing"]
    request = answers.Request("standing", (), csv_services, chat_id=1, user_id=1)
    total = flow.build(request, data.split(":", 1)[1])
    assert plain(total.text).startswith("Total return: IJR vs SPY · 10Y")
    with pytest.raises(answers.UsageError, match="no longer valid"):
        flow.build(request, "10y:tr:nasdaq/spx")
    assert re.search(r"IJR lagged SPY by [\d.]+ points in total return", plain(total.text))


def test_total_returns_on_a_tiny_frame_take_the_last_shared_day_and_each_funds_first_close() -> None:
    days = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"])
    a = pd.Series([10.0, 11.0, 12.0, 13.0], index=days)
    b = pd.Series([np.nan, 20.0, 22.0, np.nan], index=days)
    result = metrics.total_returns({"A": a, "B": b}, "max")
    assert result.as_of == date(2024, 1, 4)
    assert result.returns == pytest.approx({"A": 12.0 / 11.0 - 1, "B": 22.0 / 20.0 - 1})
    assert result.inception == {"A": date(2024, 1, 2), "B": date(2024, 1, 3)}
    assert metrics.total_returns({"A": a, "B": pd.Series(dtype="float64")}, "1d").as_of is None


def test_funds_cached_before_adjusted_closes_were_kept_get_their_whole_history_once(
    cache: MarketCache,
) -> None:
    from market.service import MarketService

    source = CsvSource(SHARED_DATA, as_of=AS_OF)
    service = MarketService(source, cache, clock=source.now, symbols=("^RUT", "^GSPC", "IWM"))
    assert service.refresh_prices().ok
    # As an older capgap left it: closes, no adjusted closes.
    cache.db.execute("UPDATE closes SET adj_close = NULL")
    assert cache.funds_without_adjusted() == {"IWM"}
    assert service.refresh_prices().ok
    assert cache.funds_without_adjusted() == set()
    iwm = adjusted("IWM")
    assert len(cache.snapshot().adjusted_series("IWM")) == len(iwm)
