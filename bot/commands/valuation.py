"""/gap and /chart gap: how much cheaper small caps are than large caps, on price-to-book and
price-to-earnings, read from two fund pairs that check each other (``market.valuation``), beside what
others have published (``market.published``).

The headline is the checked two-pair reading, not IWM vs SPY: SPY's holdings figure comes from another
family's methodology than IWM's, and nothing would check it; IWM/IVV and VTWO/VOO are each one family on
both sides, and the two pairs check each other fund by fund.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from bot.answers import Answer, Command, Request, UsageError
from bot.charts import render_gap
from bot.format import clock_time, day, esc, number
from bot.schedule import next_funds_fetch
from market import metrics, published, valuation
from market.csv_source import CsvSource
from market.valuation import PAIRS, TWIN_TOLERANCE, GapReading

if TYPE_CHECKING:
    from bot.services import Services
    from market.cache import MarketSnapshot

# Changes shown, each against a reading inside a window around that date (``metrics.gap_reading_near``).
LOOKBACKS = ((7, "1W"), (30, "1M"), (91, "3M"), (365, "1Y"))
LABELS = {measure: label for measure, (_, label) in valuation.MEASURES.items()}
TWIN_PAIRS = (("IWM", "VTWO"), ("IVV", "VOO"))
FUNDS = tuple(symbol for pair in PAIRS for symbol in (pair.small, pair.large))
# The chart marks published readings this far before capgap's first own reading: older ones would
# stretch the time axis until the recorded line is a smudge at its end.
PUBLISHED_REACH = timedelta(days=2 * 365)


def shape(gap: float, digits: int = 1) -> str:
    """'55.0% discount' (small caps cheaper), or '3.0% premium'."""
    return f"{abs(gap) * 100:.{digits}f}% {'discount' if gap >= 0 else 'premium'}"


def gap_histories(snapshot: MarketSnapshot) -> dict[str, list[GapReading]]:
    """Every reading of each measure, oldest first."""
    return {measure: valuation.readings(snapshot.funds, measure) for measure in valuation.MEASURES}


def published_by(latest: date | None) -> tuple[published.PublishedGap, ...]:
    """The published readings dated on or before the latest close: an answer as of a past day never
    quotes what was published after it."""
    return tuple(p for p in published.published() if latest is None or p.as_of <= latest)


def next_reading(services: Services) -> str:
    """When the next reading can come, from the schedule the fund-facts job keeps; never a guess."""
    source = services.market.source
    if isinstance(source, CsvSource):
        return (
            f"With CSV data the readings are the <code>as_of</code> rows of {esc(str(source.directory))}"
            f"/funds.csv with a P/B or P/E of {', '.join(FUNDS)}: no other reading will come."
        )
    cache = services.market.cache
    last_ok = cache.last_refresh("funds", ok=True)
    last_any = cache.last_refresh("funds")
    ok_at = datetime.fromisoformat(str(last_ok["at"])) if last_ok else None
    due = next_funds_fetch(ok_at, services.now())
    text = f"Fund facts are fetched once a day: the next fetch is due by {clock_time(due)}."
    if last_any and not last_any["ok"]:
        text += f" The last fetch failed ({esc(str(last_any['detail']))})."
    return text


def twin_checks(reading: GapReading) -> str:
    """'IWM 1.95 and VTWO 1.97 agree (1% apart); IVV has no VOO reading to check it'."""
    known = dict(reading.multiples)
    parts = []
    for first, second in TWIN_PAIRS:
        if first in known and second in known:
            apart = abs(known[first] / known[second] - 1.0)
            verdict = "agree" if apart <= TWIN_TOLERANCE else "disagree"
            parts.append(
                f"{first} {number(known[first])} and {second} {number(known[second])} {verdict} "
                f"({apart * 100:.0f}% apart)"
            )
        elif first in known or second in known:
            have, lack = (first, second) if first in known else (second, first)
            parts.append(f"{have} has no {lack} reading to check it")
    return "; ".join(parts)


def today_lines(history: Sequence[GapReading], measure: str, latest: date | None) -> list[str]:
    """The newest reading of one measure: the gap, each pair's figure, and what checked it."""
    label = LABELS[measure]
    if not history:
        return [f"<b>{label}</b>: no reading (no fund of either pair has a {label} in the data)."]
    reading = history[-1]
    when = day(reading.as_of)
    pairs = {p.pair.family: p for p in reading.pairs}
    lines = []
    if reading.gap is None:
        lines.append(
            f"<b>{label}</b> ({when}): ⚠️ <b>no figure</b>, the reading is contradicted: "
            f"{esc(reading.problem or '')}."
        )
        for family, pair in pairs.items():
            lines.append(
                f"  {family} {pair.pair.small} {number(pair.small)} ÷ {pair.pair.large} {number(pair.large)}"
            )
        trusted = valuation.trusted(history)
        if trusted:
            lines.append(
                f"  The last reading that held: {shape(trusted[-1].gap)} ({day(trusted[-1].as_of)})."
            )
    else:
        if len(pairs) == len(PAIRS):
            basis = "the mean of both pairs"
        else:
            (family,) = pairs
            basis = f"the {family} pair only"
        mark = ", checked by the twins" if reading.checked else ", ⚠️ unchecked: no twin reading to check it"
        lines.append(
            f"<b>{label}</b> ({when}): small caps at a <b>{shape(reading.gap)}</b> to large caps, "
            f"{basis}{mark}."
        )
        for family, pair in pairs.items():
            lines.append(
                f"  {family} {pair.pair.small} {number(pair.small)} ÷ {pair.pair.large} "
                f"{number(pair.large)}: {shape(pair.gap)}"
            )
    if reading.carried:
        older = ", ".join(f"{symbol} ({day(seen)})" for symbol, seen in reading.carried)
        lines.append(f"  Carried from an earlier snapshot, the latest there is: {older}.")
    checks = twin_checks(reading)
    if checks:
        lines.append(f"  Twins (within {TWIN_TOLERANCE * 100:.0f}%): {checks}.")
    if latest is not None and (latest - reading.as_of).days > metrics.MAX_SNAPSHOT_AGE_DAYS:
        lines.append(
            f"  ⚠️ This reading is {(latest - reading.as_of).days} days older than the latest close "
            f"({day(latest)})."
        )
    return lines


def history_lines(history: Sequence[GapReading], measure: str) -> list[str]:
    """What capgap has recorded of one measure, and the change against readings near each lookback."""
    label = LABELS[measure]
    trusted = valuation.trusted(history)
    left_out = len(history) - len(trusted)
    aside = f", {left_out} contradicted left out" if left_out else ""
    if not trusted:
        return [f"{label}: no reading that held yet{aside}."]
    count = f"{len(trusted)} reading{'s' if len(trusted) != 1 else ''}"
    lines = [f"{label}: recorded since {day(trusted[0].as_of)}, {count}{aside}."]
    if len(trusted) < 2:
        return lines
    changes = []
    for days, name in LOOKBACKS:
        since = metrics.gap_reading_near(trusted, days)
        change = metrics.gap_change(trusted, days)
        if since is None or change is None:
            changes.append(f"{name} no reading near then")
        else:
            changes.append(f"{name} {change * 100:+.1f} pts (against {day(since.as_of)})")
    lines.append(f"  Change to {day(trusted[-1].as_of)}: " + ", ".join(changes) + ".")
    return lines


def published_lines(readings: Sequence[published.PublishedGap]) -> list[str]:
    if not readings:
        return []
    lines = ["<b>Published</b> (others' figures on their own basis, not capgap's):"]
    for reading in sorted(readings, key=lambda r: r.as_of, reverse=True):
        where = esc(reading.where)
        if '"' not in reading.url:  # the one character that would end the attribute
            where = f'<a href="{esc(reading.url)}">{where}</a>'
        lines.append(
            f"• {shape(reading.gap, 0)} on {LABELS[reading.measure]}, {reading.as_of:%b %Y}: "
            f"{esc(reading.who)}, via {where}. <i>Basis: {esc(reading.basis)}</i>"
        )
    return lines


def gap(request: Request) -> Answer:
    if request.args:
        raise UsageError(
            "/gap takes no arguments: it shows the valuation gap on P/B and P/E from IWM/IVV and "
            "VTWO/VOO. For a picture: <code>/chart gap</code>."
        )
    services = request.services
    snapshot = services.market.snapshot
    latest = snapshot.latest_day
    histories = gap_histories(snapshot)
    lines = ["<b>Valuation gap</b>: small caps vs large caps, 1 − small-cap multiple ÷ large-cap multiple"]
    if not any(histories.values()):
        lines += [
            "No reading yet: the gap needs the holdings' P/B or P/E of both funds of a pair "
            f"({' and '.join(f'{p.small}/{p.large}' for p in PAIRS)}), and the data has none. "
            "It is never guessed.",
            next_reading(services),
        ]
    else:
        for measure in valuation.MEASURES:
            lines += today_lines(histories[measure], measure, latest)
        lines += ["", "<b>History</b> (capgap's own readings that held)"]
        for measure in valuation.MEASURES:
            lines += history_lines(histories[measure], measure)
        if all(len(valuation.trusted(h)) < 2 for h in histories.values()):
            lines.append(next_reading(services))
    shown = published_by(latest)
    if shown:
        lines += ["", *published_lines(shown)]
    lines += [
        "",
        "A wider gap means small caps are cheaper relative to large caps: value buyers see room to catch up, "
        "sceptics see weaker earnings priced in.",
        f"<i>holdings' P/B and P/E of the funds · {esc(services.market.source.name)}</i>",
    ]
    return Answer("\n".join(lines))


def gap_chart(request: Request) -> Answer:
    """/chart gap: the recorded gap over time with the published readings marked."""
    if len(request.args) > 1:
        raise UsageError("/chart gap takes no period: it draws every reading capgap has recorded.")
    services = request.services
    snapshot = services.market.snapshot
    histories = gap_histories(snapshot)
    series = {measure: valuation.trusted_series(h) for measure, h in histories.items()}
    if all(s.empty for s in series.values()):
        return Answer(
            "No gap chart yet: capgap has no reading of the valuation gap to draw (the data has no "
            "holdings' P/B or P/E of both funds of a pair). " + next_reading(services)
        )
    first = min(s.index[0] for s in series.values() if not s.empty).date()
    shown = published_by(snapshot.latest_day)
    drawn = [p for p in shown if p.as_of >= first - PUBLISHED_REACH]
    older = [p for p in shown if p.as_of < first - PUBLISHED_REACH]
    note = ""
    if older:
        note = (
            f"Not drawn: {len(older)} published reading{'s' if len(older) != 1 else ''} from before "
            f"{day(first - PUBLISHED_REACH)} ({', '.join(f'{p.as_of:%b %Y}' for p in older)}); /gap lists them."
        )
    left_out = sum(len(h) - len(valuation.trusted(h)) for h in histories.values())
    png = render_gap(
        series["pb"],
        series["pe"],
        drawn,
        source_note=snapshot.source or services.market.source.name,
        note=note,
    )
    recorded = []
    for measure, line in series.items():
        if not line.empty:
            count = f"{len(line)} reading{'s' if len(line) != 1 else ''}"
            recorded.append(f"{LABELS[measure]} since {day(line.index[0].date())}, {count}")
    caption = [
        "<b>Valuation gap</b>: capgap's recorded readings (" + "; ".join(recorded) + ")",
    ]
    if left_out:
        caption.append(f"{left_out} contradicted reading{'s' if left_out != 1 else ''} left out.")
    if drawn:
        caption.append(
            f"Marked: {len(drawn)} published reading{'s' if len(drawn) != 1 else ''}, others' figures on "
            "their own basis (/gap names them)."
        )
    if note:
        caption.append(esc(note))
    return Answer("\n".join(caption), photo=png, photo_name="capgap-gap.png")


COMMANDS = (
    Command(
        "gap",
        "The small- vs large-cap valuation gap on P/B and P/E, checked, with its history",
        "/gap",
        ("/gap",),
        gap,
        market_only=True,
    ),
)


BUTTONS = ()
