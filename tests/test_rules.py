"""The one-line alert grammar: every form a user may type, and a specific message for each mistake."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.rules import (
    DEFAULT_BAND,
    GAP,
    LEAD,
    MAX_RULE_CHARS,
    RATIO,
    RuleError,
    RuleSpec,
    parse_rule,
    parse_rules_for_storage,
)


@pytest.mark.parametrize(
    ("text", "target", "kind", "level", "window", "key"),
    [
        ("rut above 3000", "^RUT", "above", 3000.0, None, "^RUT"),
        ("spx below 4500", "^GSPC", "below", 4500.0, None, "^GSPC"),
        ("rut cross 2000", "^RUT", "cross", 2000.0, None, "^RUT"),
        ("rut move 2%", "^RUT", "move", 2.0, None, "^RUT:move"),
        ("rut high", "^RUT", "high", None, None, "^RUT"),
        ("rut drawdown 10%", "^RUT", "drawdown", 10.0, None, "^RUT:drawdown"),
        ("ratio below 0.40", RATIO, "below", 0.40, None, "RATIO"),
        ("ratio above 0.5", RATIO, "above", 0.5, None, "RATIO"),
        ("lead 5% 3m", LEAD, "above", 5.0, "3m", "LEAD:3m"),
        ("lead -5% 3m", LEAD, "below", -5.0, "3m", "LEAD:3m"),
        ("lead below 2% ytd", LEAD, "below", 2.0, "ytd", "LEAD:ytd"),
        ("lead 3m 5%", LEAD, "above", 5.0, "3m", "LEAD:3m"),
        ("gap above 45%", GAP, "above", 45.0, None, "GAP"),
        ("gap below 35%", GAP, "below", 35.0, None, "GAP"),
        ("gap shift 3", GAP, "shift", 3.0, None, "GAP"),
        ("iwm above 200", "IWM", "above", 200.0, None, "IWM"),
        ("voo below 400", "VOO", "below", 400.0, None, "VOO"),
    ],
)
def test_every_rule_form_parses_to_its_target_kind_level_and_key(
    text: str, target: str, kind: str, level: float | None, window: str | None, key: str
) -> None:
    spec = parse_rule(text)
    assert (spec.target, spec.kind, spec.level, spec.window, spec.key) == (target, kind, level, window, key)
    assert spec.describe().startswith("Tells you when")


@pytest.mark.parametrize("window", ["1w", "1m", "3m", "6m", "ytd", "1y", "3y", "5y", "10y"])
def test_every_lead_window_is_accepted(window: str) -> None:
    assert parse_rule(f"lead 5% {window}").key == f"LEAD:{window}"


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("RUT", "^RUT"),
        ("^rut", "^RUT"),
        ("russell", "^RUT"),
        ("Russell 2000", "^RUT"),
        ("r2k", "^RUT"),
        ("SPX", "^GSPC"),
        ("s&p", "^GSPC"),
        ("S&P 500", "^GSPC"),
        ("sp500", "^GSPC"),
        ("gspc", "^GSPC"),
        ("IWM", "IWM"),
        ("vtwo", "VTWO"),
        ("Spy", "SPY"),
        ("ivv", "IVV"),
    ],
)
def test_index_and_etf_names_are_the_aliases_of_instruments_in_any_case(name: str, symbol: str) -> None:
    assert parse_rule(f"{name} above 300").target == symbol


def test_rule_words_are_case_insensitive() -> None:
    assert parse_rule("RUT ABOVE 3000 CLOSE ONCE") == parse_rule("rut above 3000 close once")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("rut above 3,000", "rut above 3000"),
        ("rut above 1,000,000", "rut above 1000000"),
        ("rut above 3,000.5", "rut above 3000.5"),
        ("rut move 2", "rut move 2%"),
        ("rut move 2 %", "rut move 2%"),
        ("gap above 45", "gap above 45%"),
        ("lead 5 3m", "lead 5% 3m"),
        ("rut above 3000 band 0.5", "rut above 3000 band 0.5%"),
        ("lead +5% 3m", "lead 5% 3m"),
    ],
)
def test_thousands_separators_and_percent_signs_are_optional(a: str, b: str) -> None:
    assert parse_rule(a) == parse_rule(b)


def test_modifiers_may_come_in_any_order() -> None:
    one = parse_rule("rut above 3000 once close band 2% for 30d")
    other = parse_rule("rut above 3000 for 30d band 2% close once")
    assert one == other
    assert (one.mode, one.once, one.band, one.expires_after) == ("close", True, 0.02, timedelta(days=30))


def test_expiry_in_weeks_is_seven_days_each() -> None:
    assert parse_rule("rut above 3000 for 2w").expires_after == timedelta(days=14)


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("rut above 3000", "live"),
        ("rut cross 2000", "live"),
        ("ratio below 0.4", "live"),
        ("rut drawdown 10%", "live"),
        ("rut move 2%", "close"),
        ("rut high", "close"),
        ("lead 5% 3m", "close"),
        ("gap above 45%", "close"),
        ("gap shift 3", "close"),
    ],
)
def test_default_mode_is_live_for_price_levels_and_close_for_move_high_lead_and_gap(
    text: str, mode: str
) -> None:
    assert parse_rule(text).mode == mode


def test_defaults_are_repeat_with_a_one_percent_band_and_no_expiry() -> None:
    spec = parse_rule("rut above 3000")
    assert (spec.once, spec.band, spec.expires_after) == (False, DEFAULT_BAND, None)
    assert DEFAULT_BAND == 0.01


def test_band_is_read_as_a_fraction_of_the_level() -> None:
    assert parse_rule("rut above 3000 band 0.5%").band == pytest.approx(0.005)


@pytest.mark.parametrize("band", ["0.1%", "20%"])
def test_band_edges_are_accepted(band: str) -> None:
    parse_rule(f"rut above 3000 band {band}")


@pytest.mark.parametrize(
    "text",
    [
        "rut above 1",
        "rut above 1,000,000",
        "ratio below 0.01",
        "ratio above 10",
        "gap above -100",
        "gap below 100",
    ],
)
def test_level_bounds_are_inclusive(text: str) -> None:
    parse_rule(text)


def test_canonical_text_names_the_rule_mode_and_band() -> None:
    assert parse_rule("rut above 3000").canonical == "RUT above 3,000 · live · band 1%"
    assert parse_rule("Russell cross 2000 close once for 2w").canonical == (
        "RUT cross 2,000 · close · once · band 1% · for 14d"
    )
    assert parse_rule("lead -5% 3m").canonical == "lead -5% 3m · close · band 1%"
    assert parse_rule("gap shift 3").canonical == "gap shift 3 · close"


@pytest.mark.parametrize(
    "text",
    [
        "rut above 3000",
        "spx below 4,500.25 close once",
        "rut cross 2000 band 0.3% for 10d",
        "rut move 1.5%",
        "rut high live band 2%",
        "rut drawdown 12.5%",
        "ratio below 0.4",
        "lead 5% 3m",
        "lead -7.5% 1y",
        "lead below 2% ytd",
        "lead cross -1% 6m",
        "gap above -5%",
        "gap shift 2.5",
        "iwm above 250 live once",
    ],
)
def test_canonical_text_parses_back_to_the_same_rule(text: str) -> None:
    spec = parse_rule(text)
    assert parse_rule(spec.canonical) == spec


@given(
    level=st.integers(1, 1_000_000),
    cents=st.integers(0, 99),
    mode=st.sampled_from(["", " close", " live"]),
    once=st.booleans(),
    band_tenths=st.integers(1, 200),
    days=st.one_of(st.none(), st.integers(1, 730)),
)
def test_any_index_level_rule_round_trips_through_its_canonical_text(
    level: int, cents: int, mode: str, once: bool, band_tenths: int, days: int | None
) -> None:
    value = min(level + cents / 100, 1_000_000)
    text = f"spx below {value}{mode}{' once' if once else ''} band {band_tenths / 10}%"
    text += f" for {days}d" if days else ""
    spec = parse_rule(text)
    assert parse_rule(spec.canonical) == spec
    assert spec.level == pytest.approx(value)


def test_describe_says_what_the_rule_does_in_plain_words() -> None:
    words = parse_rule("rut above 3000 once for 30d").describe()
    assert "Russell 2000 reaches 3,000 or more" in words
    assert "once, then deleted" in words
    assert "expires after 30 days" in words
    assert "beats" not in words
    assert "moves 2% or more in a day" in parse_rule("rut move 2%").describe()
    assert "new all-time closing high" in parse_rule("rut high").describe()
    assert "lead over the S&P 500 over 3 months" in parse_rule("lead 5% 3m").describe()
    assert "valuation gap on price-to-book moves 3 points" in parse_rule("gap shift 3").describe()
    assert "either way" in parse_rule("rut cross 2000").describe()


def test_a_cross_is_stored_as_an_above_row_and_a_below_row() -> None:
    rows = parse_rules_for_storage(parse_rule("rut cross 2000 band 2%"))
    assert [(r["key"], r["kind"], r["level"], r["band"]) for r in rows] == [
        ("^RUT", "above", 2000.0, 0.02),
        ("^RUT", "below", 2000.0, 0.02),
    ]
    assert rows[0]["text"] == rows[1]["text"] == "RUT cross 2,000 · live · band 2%"


@pytest.mark.parametrize(
    ("text", "key", "kind"),
    [
        ("rut drawdown 10%", "^RUT:drawdown", "above"),
        ("rut move 2%", "^RUT:move", "move"),
        ("rut high", "^RUT", "high"),
        ("lead -5% 3m", "LEAD:3m", "below"),
        ("gap shift 3", "GAP", "shift"),
    ],
)
def test_each_rule_is_stored_as_one_row_of_its_evaluation_kind(text: str, key: str, kind: str) -> None:
    spec = parse_rule(text)
    rows = parse_rules_for_storage(spec)
    assert [(r["key"], r["kind"]) for r in rows] == [(key, kind)]
    assert rows[0]["mode"] == spec.mode
    assert rows[0]["expires_after"] is None


def test_a_stored_row_carries_its_expiry_and_once() -> None:
    (row,) = parse_rules_for_storage(parse_rule("rut above 3000 once for 2w"))
    assert (row["once"], row["expires_after"]) == (True, timedelta(days=14))


def test_rule_spec_is_frozen() -> None:
    spec = parse_rule("rut above 3000")
    with pytest.raises(AttributeError):
        spec.level = 1.0  # type: ignore[misc]
    assert isinstance(spec, RuleSpec)


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Empty rule"),
        ("   ", "Empty rule"),
        ("xyz above 3000", 'Unknown index or ETF "xyz": use one of rut, spx, iwm, vtwo, spy, voo, ivv'),
        ("rut", "What should rut do?"),
        (
            "rut over 3000",
            '"over" is not a rule for rut: use one of above, below, cross, move, high, drawdown',
        ),
        ("ratio move 2", '"move" is not a rule for ratio: use one of above, below, cross'),
        ("rut above", "Missing level after 'above': write for example 'rut above 3000'"),
        ("rut above close", "Missing level after 'above'"),
        ("ratio below", "write for example 'ratio below 0.40'"),
        ("gap shift", "write for example 'gap shift 3'"),
        ("rut above abc", '"abc" is not a number'),
        ("rut above 3,00", '"3,00" is not a number'),
        ("rut above 1e5", '"1e5" is not a number'),
        ("rut above 3.0.0", '"3.0.0" is not a number'),
        ("rut above nan", '"nan" is not a finite number'),
        ("rut above inf", '"inf" is not a finite number'),
        ("rut above -infinity", '"-infinity" is not a finite number'),
        ("rut move NaN%", '"nan%" is not a finite number'),
        ("rut above -5", "The RUT level must be between 1 and 1,000,000, got -5"),
        ("rut above 0", "The RUT level must be between 1 and 1,000,000, got 0"),
        ("rut above 0.99", "between 1 and 1,000,000"),
        ("rut above 1,000,001", "between 1 and 1,000,000"),
        ("iwm above 5000000", "The IWM level must be between 1 and 1,000,000"),
        ("rut above 3000%", "The RUT level is a price in points: drop the %"),
        ("ratio above 20", "The ratio must be between 0.01 and 10, got 20"),
        ("ratio below 0.001", "The ratio must be between 0.01 and 10"),
        ("ratio below 40%", "The ratio is a plain number like 0.40, not a percent: drop the %"),
        ("rut move 0", "A move level must be between 0.1% and 100%, got 0"),
        ("rut move -2%", "A move level must be between 0.1% and 100%"),
        ("rut drawdown 150%", "A drawdown level must be between 0.1% and 100%"),
        ("gap above 150%", "A valuation-gap level must be between -100% and 100%"),
        ("gap shift 0", "A gap shift must be between 0.1 and 100 points"),
        ("lead 0.05% 3m", "A lead must be between 0.1 and 100 points either way"),
        ("lead -500% 3m", "A lead must be between 0.1 and 100 points either way"),
        ("lead 5%", "Missing window for the lead"),
        ("lead 5% 2m", 'Unknown window "2m": use one of 1w, 1m, 3m, 6m, ytd, 1y, 3y, 5y, 10y'),
        ("lead 3m", "Missing level for the lead"),
        ("lead abc 3m", '"abc" is not a number'),
        ("rut high 3000", "A high rule takes no level: write 'rut high'"),
        ("rut above 3000 loud", 'Unknown modifier "loud": use close, live, once, band 1% or for 30d'),
        ("rut above 3000 4000", 'Unexpected number "4000"'),
        ("rut above 3000 close live", "Choose either 'close' or 'live', not both"),
        ("rut above 3000 close close", '"close" is given twice'),
        ("rut above 3000 once once", '"once" is given twice'),
        ("rut above 3000 band 1% band 2%", '"band" is given twice'),
        ("rut above 3000 band", "Missing size after 'band'"),
        ("rut above 3000 band wide", '"wide" is not a number'),
        ("rut above 3000 band 0.05%", "The band must be between 0.1% and 20%, got 0.05%"),
        ("rut above 3000 band 25%", "The band must be between 0.1% and 20%"),
        ("rut above 3000 band nan", '"nan" is not a finite number'),
        ("rut above 3000 for", "Missing duration after 'for'"),
        ("rut above 3000 for ever", '"ever" is not a duration: write days or weeks'),
        ("rut above 3000 for 3m", '"3m" is not a duration'),
        ("rut above 3000 for 0d", "An expiry must be between 1 and 730 days, got 0d"),
        ("rut above 3000 for 200w", "An expiry must be between 1 and 730 days"),
        ("rut move 2% band 1%", "'band' does not apply to a move rule: it re-arms each trading day"),
        ("gap shift 3 band 1%", "'band' does not apply to a shift rule"),
        ("gap above 40% live", "The valuation gap is measured once a day from fund data"),
        ("x" * (MAX_RULE_CHARS + 1), f"That rule is {MAX_RULE_CHARS + 1} characters long; keep it under 200"),
    ],
)
def test_bad_input_raises_a_rule_error_with_a_specific_message(text: str, message: str) -> None:
    with pytest.raises(RuleError) as raised:
        parse_rule(text)
    assert message in str(raised.value)


def test_a_rule_of_exactly_the_maximum_length_is_read() -> None:
    text = "rut above 3000".ljust(MAX_RULE_CHARS)
    assert len(text) == MAX_RULE_CHARS
    assert parse_rule(text).level == 3000.0


def test_rule_error_is_a_value_error() -> None:
    assert issubclass(RuleError, ValueError)
