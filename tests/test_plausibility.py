"""market.plausibility: which values capgap keeps, holds until confirmed, or rejects — on real history and on
hand-built frames around it."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from market.metrics import fee_cost
from market.model import EXPENSE_RATIO_CEILING, FundFacts, Quote
from market.plausibility import MAX_DAILY_MOVE, peers, plausible_fund, screen, screen_quotes
from market.yahoo import _expense_fraction
from testing.world import SHARED_DATA

FILES = {
    "^RUT": "RUT",
    "^GSPC": "GSPC",
    "IWM": "IWM",
    "VTWO": "VTWO",
    "SPY": "SPY",
    "VOO": "VOO",
    "IVV": "IVV",
}


def history() -> pd.DataFrame:
    columns = {}
    for symbol, stem in FILES.items():
        frame = pd.read_csv(
            SHARED_DATA / f"{stem}_daily.csv", usecols=["date", "close"], parse_dates=["date"]
        )
        columns[symbol] = frame.set_index("date")["close"].dropna()
    return pd.DataFrame(columns).sort_index()


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return history()


@pytest.fixture
def week(real: pd.DataFrame) -> pd.DataFrame:
    """The real closes of 2 to 26 Jan 2024, a copy each test may spoil."""
    return real.loc["2024-01-02":"2024-01-26"].copy()


def jan(day: int) -> pd.Timestamp:
    return pd.Timestamp(2024, 1, day)


def test_no_real_close_of_any_instrument_since_1927_is_held(real: pd.DataFrame) -> None:
    """The threshold sits above every real daily move: Black Monday's -20.47% on ^GSPC is kept."""
    screened = screen(real)
    assert screened.held == ()
    pd.testing.assert_frame_equal(screened.closes, real.astype("float64"))
    moves = real.apply(lambda s: s.dropna().pct_change()).stack()
    assert moves.abs().max() < MAX_DAILY_MOVE
    assert moves.min() == pytest.approx(-0.2047, abs=1e-4)  # ^GSPC, 19 Oct 1987


@pytest.mark.parametrize(
    "bad",
    [1e12, 0.0, -1944.39, math.inf, 1944.39 * 1.5, 1944.39 / 2],
    ids=["spike", "zero", "negative", "infinite", "jump-up-50%", "halved"],
)
def test_one_bad_russell_close_is_rejected_and_the_next_is_judged_against_the_last_good_one(
    week: pd.DataFrame, bad: float
) -> None:
    week.loc[jan(19), "^RUT"] = bad
    screened = screen(week)

    (held,) = screened.held
    assert (held.symbol, held.day, held.status) == ("^RUT", date(2024, 1, 19), "rejected")
    assert held.reference == pytest.approx(1923.650024)  # the 18 Jan close
    assert math.isnan(screened.closes.loc[jan(19), "^RUT"])
    # Every other value is kept as it came, the 22 Jan close included (+3.1% from 18 Jan's).
    kept = screened.closes.drop(index=jan(19))
    pd.testing.assert_frame_equal(kept, week.drop(index=jan(19)))
    assert screened.closes.loc[jan(22), "^RUT"] == pytest.approx(1983.380005)


def test_a_spike_on_the_newest_day_is_refuted_by_the_peers_the_same_day(week: pd.DataFrame) -> None:
    frame = week.loc[: jan(19)].copy()
    frame.loc[jan(19), "^RUT"] = 1e12
    (held,) = screen(frame).held
    assert held.status == "rejected"
    assert "IWM moved +0.96% that day" in held.reason  # 192.43 / 190.60


def test_a_crash_the_peers_share_is_kept(week: pd.DataFrame) -> None:
    """A real -30% day would move IWM and VTWO with the index: that second reading confirms it."""
    frame = week.loc[: jan(19)].copy()
    frame.loc[jan(19), ["^RUT", "IWM"]] = frame.loc[jan(18), ["^RUT", "IWM"]] * 0.7
    screened = screen(frame)
    assert screened.held == ()
    assert screened.closes.loc[jan(19), "^RUT"] == pytest.approx(1923.650024 * 0.7)


def test_a_jump_with_no_peer_reading_waits_for_the_next_close(week: pd.DataFrame) -> None:
    frame = week[["^RUT", "^GSPC"]].loc[: jan(19)].copy()
    frame.loc[jan(19), "^RUT"] = 1923.65 * 1.4
    (held,) = screen(frame).held
    assert held.status == "unconfirmed"

    # The next close holds the new level: the jump was real after all.
    frame.loc[jan(22), ["^RUT", "^GSPC"]] = [1923.65 * 1.41, 4850.43]
    assert screen(frame).held == ()
    # The next close goes back: it was a bad tick.
    frame.loc[jan(22), "^RUT"] = 1983.38
    (held,) = screen(frame).held
    assert held.status == "rejected"
    assert held.reason.endswith("the next close went back to 1,983.38")


def test_the_first_value_of_a_frame_is_judged_against_the_cached_close_before_it(week: pd.DataFrame) -> None:
    frame = week.loc[jan(19) :].copy()
    frame.loc[jan(19), "^GSPC"] = 4780.94 * 10
    (held,) = screen(frame, prior={"^GSPC": 4780.939941, "^RUT": 1923.650024}).held
    assert (held.symbol, held.day, held.reference) == ("^GSPC", date(2024, 1, 19), 4780.939941)
    # Without the cached close there is nothing to judge the first value by: it is taken as it is.
    assert screen(frame).closes.loc[jan(19), "^GSPC"] == pytest.approx(47809.39961)


def test_a_missing_value_is_a_gap_not_a_held_value(week: pd.DataFrame) -> None:
    week.loc[jan(19), "^RUT"] = np.nan
    screened = screen(week)
    assert screened.held == ()
    assert math.isnan(screened.closes.loc[jan(19), "^RUT"])


def test_peers_are_the_other_instruments_of_the_same_segment() -> None:
    assert peers("^RUT") == ("IWM", "VTWO")
    assert peers("SPY") == ("^GSPC", "VOO", "IVV")
    assert peers("UNKNOWN") == ()


def quote(symbol: str, price: float, day: int = 19) -> Quote:
    return Quote(symbol, price, datetime(2024, 1, day, 20, 0, tzinfo=UTC))


def test_a_live_quote_far_from_the_last_close_is_held_unless_a_peer_quote_follows(week: pd.DataFrame) -> None:
    closes = week.loc[: jan(18)]
    quotes = {"^RUT": quote("^RUT", 1e6), "IWM": quote("IWM", 191.0), "^GSPC": quote("^GSPC", 4790.0)}
    kept, held = screen_quotes(quotes, closes, ())
    assert set(kept) == {"IWM", "^GSPC"}
    (refused,) = held
    assert (refused.symbol, refused.kind, refused.status) == ("^RUT", "quote", "rejected")
    # Each kept quote carries the last accepted close before its day as its previous close.
    assert kept["IWM"].previous_close == pytest.approx(190.600006)

    # The index and its ETF both down 30%: kept.
    quotes = {"^RUT": quote("^RUT", 1923.65 * 0.7), "IWM": quote("IWM", 190.6 * 0.7)}
    kept, held = screen_quotes(quotes, closes, ())
    assert set(kept) == {"^RUT", "IWM"} and held == ()


def test_a_zero_or_negative_quote_is_rejected(week: pd.DataFrame) -> None:
    kept, held = screen_quotes({"IWM": quote("IWM", 0.0), "SPY": quote("SPY", -5.0)}, week, ())
    assert kept == {}
    assert [h.status for h in held] == ["rejected", "rejected"]


def test_a_quote_for_a_day_whose_close_was_held_is_not_kept(week: pd.DataFrame) -> None:
    week.loc[jan(19), "^RUT"] = 1e12
    screened = screen(week.loc[: jan(19)])
    kept, held = screen_quotes({"^RUT": quote("^RUT", 1e12)}, screened.closes, screened.held)
    assert kept == {} and held == ()  # already held as the day's close: not counted twice


def test_implausible_fund_fields_become_unknown_and_plausible_ones_stay() -> None:
    facts = FundFacts("IWM", date(2024, 1, 19), 0.19, 62e9, 0.0, "funds.csv")
    checked, dropped = plausible_fund(facts)
    assert (checked.expense_ratio, checked.total_assets, checked.price_to_book) == (None, 62e9, None)
    assert dropped == ["expense ratio 0.19", "price-to-book 0.0"]
    good = FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, 1.9, "funds.csv", 16.0)
    assert plausible_fund(good) == (good, [])


@pytest.mark.parametrize("price_to_earnings", [0.0, 1.5, 250.0, -12.0, math.inf, math.nan])
def test_an_implausible_price_to_earnings_becomes_unknown(price_to_earnings: float) -> None:
    facts = FundFacts("IWM", date(2024, 1, 19), 0.0019, 62e9, 1.9, "funds.csv", price_to_earnings)
    checked, dropped = plausible_fund(facts)
    assert checked.price_to_earnings is None
    assert (checked.expense_ratio, checked.price_to_book) == (0.0019, 1.9)
    assert dropped == [f"price-to-earnings {price_to_earnings!r}"]


@pytest.mark.parametrize(
    ("ratio", "plausible"),
    [
        (0.0019, True),  # IWM's 0.19% a year
        (EXPENSE_RATIO_CEILING - 1e-9, True),
        (EXPENSE_RATIO_CEILING, False),
        (0.0945, False),  # SPY's 0.0945%, read as a fraction: 9.45% a year
        (0.19, False),
    ],
)
def test_one_expense_ratio_ceiling_holds_for_the_guard_the_yahoo_reading_and_the_cost(
    ratio: float, plausible: bool
) -> None:
    """At 5% and above an expense ratio is a unit mix-up everywhere: the guard drops it, the Yahoo reading
    leaves it unknown and the cost refuses it. Below, all three take it as it is."""
    checked, dropped = plausible_fund(FundFacts("SPY", date(2024, 1, 19), ratio, 5e11, 4.5, "test"))
    assert checked.expense_ratio == (ratio if plausible else None)
    assert dropped == ([] if plausible else [f"expense ratio {ratio!r}"])
    assert _expense_fraction(ratio) == (ratio if plausible else None)
    if plausible:
        assert fee_cost(10_000, 1, ratio, 0.07).first_year_fee == pytest.approx(10_000 * 1.07 * ratio)
    else:
        with pytest.raises(ValueError, match=r"expense ratio must be a fraction below 0\.05"):
            fee_cost(10_000, 1, ratio, 0.07)
