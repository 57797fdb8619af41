"""alerts/creation.py on the real history as at the 18 January 2024 close: a new rule's start, its high,
whether it has data, and the year it would have fired in — each figure computed here from the CSV files."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import pytest

from alerts.creation import create_rule, starting_value
from alerts.rules import RuleError
from alerts.store import MAX_GROUPS_PER_CHAT, DuplicateRule, QuotaExceeded
from bot.services import Services
from testing.alerts_oracle import above_fires

CHAT = 4242
AS_OF = date(2024, 1, 18)


def closes(shared_data: Path, name: str) -> dict[date, float]:
    """A symbol's closes as the CSV file has them, up to AS_OF."""
    with (shared_data / f"{name}_daily.csv").open(newline="") as handle:
        rows = {
            date.fromisoformat(r["date"]): float(r["close"]) for r in csv.DictReader(handle) if r["close"]
        }
    return {day: value for day, value in rows.items() if day <= AS_OF}


def rules_stored(services: Services) -> int:
    return int(services.alerts.db.execute("SELECT COUNT(*) FROM rules").fetchone()[0])


def crossings_above(history: dict[date, float], level: float, band: float, start: date) -> list[date]:
    """The closes from ``start`` on at which "above ``level``" fires, the rule created at the close before."""
    days = sorted(history)
    created = max(d for d in days if d < start)
    return above_fires(((d, history[d]) for d in days if d >= created), level, band)


def test_a_new_rule_starts_from_the_last_close_and_previews_the_year_it_would_have_fired_in(
    csv_services: Services, shared_data: Path
) -> None:
    rut = closes(shared_data, "RUT")
    made = create_rule(
        csv_services.alerts, csv_services.market.snapshot, csv_services.now(), CHAT, "rut above 1950 close"
    )

    assert made.number == 1 and made.spec.canonical.startswith("RUT above 1,950")
    assert made.current is not None and made.current.is_close
    assert made.current.session == AS_OF and made.current.value == pytest.approx(rut[AS_OF])  # 1,923.65
    assert not made.start.already_holds and not made.without_data
    assert made.preview is not None
    expected = crossings_above(rut, 1950.0, 0.01, AS_OF - timedelta(days=364))
    assert list(made.preview.dates) == expected and len(expected) > 0
    assert rules_stored(csv_services) == 1


def test_a_drawdown_rule_knows_the_high_and_that_it_already_holds(
    csv_services: Services, shared_data: Path
) -> None:
    rut = closes(shared_data, "RUT")
    high = max(rut.values())  # 2,442.74 on 8 Nov 2021
    made = create_rule(
        csv_services.alerts, csv_services.market.snapshot, csv_services.now(), CHAT, "rut drawdown 10%"
    )

    assert made.high == pytest.approx(high)
    assert made.start.already_holds
    assert made.start.value == pytest.approx((1 - rut[AS_OF] / high) * 100)  # 21.25% below


def test_a_rule_on_a_fund_whose_history_stopped_is_kept_without_data_and_previewed_up_to_its_end(
    csv_services: Services, shared_data: Path
) -> None:
    vtwo = closes(shared_data, "VTWO")
    last = max(vtwo)  # the bundled VTWO file ends in April 2023
    made = create_rule(
        csv_services.alerts, csv_services.market.snapshot, csv_services.now(), CHAT, "vtwo below 70"
    )

    assert made.current is None and made.without_data and made.last_data == last
    assert rules_stored(csv_services) == 1
    assert made.preview is not None and made.preview.end == AS_OF


def test_a_rule_on_the_valuation_gap_before_any_price_to_book_is_kept_with_no_data_and_no_preview(
    csv_services: Services,
) -> None:
    """The bundled funds.csv has no P/B reading, so the gap never had a value to start from or look back on."""
    made = create_rule(
        csv_services.alerts, csv_services.market.snapshot, csv_services.now(), CHAT, "gap above 45%"
    )

    assert made.current is None and made.without_data and made.last_data is None
    assert made.preview is None and not made.start.already_holds
    assert rules_stored(csv_services) == 1


def test_a_level_already_passed_is_reported_with_the_value_it_starts_from(
    csv_services: Services, shared_data: Path
) -> None:
    rut = closes(shared_data, "RUT")
    made = create_rule(
        csv_services.alerts, csv_services.market.snapshot, csv_services.now(), CHAT, "rut below 2000"
    )

    assert rut[AS_OF] < 2000
    assert made.start.already_holds and made.start.value == pytest.approx(rut[AS_OF])
    assert made.spec.kind == "below" and made.spec.level == 2000


def test_a_high_rule_starts_from_the_all_time_closing_high_and_waits_below_it(
    csv_services: Services, shared_data: Path
) -> None:
    spx = closes(shared_data, "GSPC")
    high = max(spx.values())  # 4,796.56 on 3 Jan 2022; the 18 Jan 2024 close is below it
    made = create_rule(
        csv_services.alerts, csv_services.market.snapshot, csv_services.now(), CHAT, "spx high"
    )

    assert made.high == pytest.approx(high) and spx[AS_OF] < high
    assert not made.start.already_holds


def test_a_duplicate_and_a_full_chat_are_refused_and_store_nothing_nor_take_a_number(
    csv_services: Services,
) -> None:
    snapshot, now = csv_services.market.snapshot, csv_services.now()
    create_rule(csv_services.alerts, snapshot, now, CHAT, "rut above 3000")
    with pytest.raises(DuplicateRule) as duplicate:
        create_rule(csv_services.alerts, snapshot, now, CHAT, "rut above 3000")
    assert duplicate.value.number == 1
    assert rules_stored(csv_services) == 1
    # A refused rule takes no number either: the next one the chat sets is #2.
    assert create_rule(csv_services.alerts, snapshot, now, CHAT, "spx above 6000").number == 2
    for level in range(1, MAX_GROUPS_PER_CHAT - 1):
        create_rule(csv_services.alerts, snapshot, now, CHAT, f"spx above {6000 + level}")
    before = rules_stored(csv_services)
    with pytest.raises(QuotaExceeded):
        create_rule(csv_services.alerts, snapshot, now, CHAT, "spx above 9000")
    with pytest.raises(RuleError):
        create_rule(csv_services.alerts, snapshot, now, CHAT, "rut sideways 5")
    assert rules_stored(csv_services) == before


def test_the_level_buttons_centre_on_the_value_a_rule_would_start_from(
    csv_services: Services, shared_data: Path
) -> None:
    value = starting_value(csv_services.market.snapshot, csv_services.now(), "spx above 1")
    assert value == pytest.approx(closes(shared_data, "GSPC")[AS_OF])  # 4,780.94
