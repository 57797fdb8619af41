"""/standing and /chart: where the Russell 2000 and the S&P 500 stand (or any two instruments capgap
follows), in numbers and in a picture: returns, highs, the 200-day average, total returns of the funds, and
the price ratio against its own history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from bot.answers import Answer, Button, ButtonFlow, Command, Request, UsageError
from bot.charts import render_comparison, render_ratio
from bot.commands.valuation import gap_chart
from bot.format import day, esc, number, pct, points
from bot.provenance import footer, live_note, snapshot_with
from market import metrics
from market.instruments import (
    GSPC,
    HEADLINE,
    IWM,
    PROXY_ETF,
    RUT,
    SPY,
    VOO,
    VTWO,
    Instrument,
    benchmark,
    by_symbol,
    resolve,
)
from market.metrics import ACCEPTED_PERIODS, PERIODS, WHOLE_HISTORY, parse_period

if TYPE_CHECKING:
    from bot.services import Services
    from market.cache import MarketSnapshot

# The table's rows and the buttons under both answers: every standard period, long ones included.
PERIOD_KEYS = PERIODS
PERIOD_HELP = ", ".join(ACCEPTED_PERIODS) + ", or a date like 2020-03-23 (meaning since then)"
DEFAULT_PERIOD = "1y"
_SPANS = {"d": "day", "w": "week", "m": "month", "y": "year"}


def period_label(period: str | date) -> str:
    return f"since {day(period)}" if isinstance(period, date) else period.upper()


def period_phrase(period: str | date, start: date | None) -> str:
    """How a sentence about ``period`` begins: 'Over the last 10 years', 'Since 13 Jun 2012'."""
    if isinstance(period, date):
        return f"Since {day(period)}"
    if period == "ytd":
        return "So far this year"
    if period == WHOLE_HISTORY:
        return f"Since {day(start)}, all the history both share," if start else "Over all the history"
    count, unit = int(period[:-1]), _SPANS[period[-1]]
    return f"Over the last {unit}" if count == 1 else f"Over the last {count} {unit}s"


def shared_days(rut: pd.Series, spx: pd.Series) -> pd.DatetimeIndex:
    """The dates on which both indices have a close: what a comparison can stand on."""
    return pd.DatetimeIndex(rut.dropna().index.intersection(spx.dropna().index)).sort_values()


Pair = tuple[Instrument, Instrument]
# The funds whose total returns /standing tr compares by default: each Russell 2000 fund against the S&P 500
# fund of its own family.
TOTAL_RETURN_PAIRS: tuple[Pair, ...] = ((IWM, SPY), (VTWO, VOO))
AVERAGE_SESSIONS = 200
INSTRUMENT_HELP = "rut, spx, sp600, mid, ijr, ijh, mdy, rsp, iwb, iwn, iwm, spy…"
_TOTAL_WORDS = ("tr", "total")


@dataclass(frozen=True)
class View:
    """What a /standing or /chart asks for: a period, two instruments, and prices or total returns."""

    period: str | date
    pair: Pair = HEADLINE
    total: bool = False
    ratio: bool = False  # /chart ratio

    @property
    def headline(self) -> bool:
        return self.pair == HEADLINE

    def data(self, period: str | date | None = None, total: bool | None = None) -> str:
        """The button data that asks for this view (with another period or measure): the arguments a user
        would type, joined by ':', so a press is validated like typed input."""
        chosen = self.period if period is None else period
        parts = [chosen.isoformat() if isinstance(chosen, date) else chosen]
        if self.total if total is None else total:
            parts.append("tr")
        if self.ratio:
            parts.append("ratio")
        if not self.headline:
            parts.append(f"{self.pair[0].short}/{self.pair[1].short}".lower())
        return ":".join(parts)


def parse_view(args: tuple[str, ...], command: str) -> View:
    """A period, ``tr`` (total return), ``ratio`` (/chart) and up to two instruments, in any order: one
    instrument is compared with ``benchmark`` (the S&P 500, or SPY for a fund); two, or ``a/b``, with
    each other."""
    period: str | date | None = None
    names: list[str] = []
    total = ratio = False
    for raw in args:
        word = raw.strip().lower()
        if word in _TOTAL_WORDS and command == "standing":
            total = True
        elif word == "ratio" and command == "chart":
            ratio = True
        elif word in ("vs", "v", "against"):
            continue
        elif "/" in word and len(word.split("/")) == 2 and all(word.split("/")):
            names += word.split("/")
        elif parse_period(word) is not None:
            if period is not None:
                raise UsageError(
                    f"/{command} takes one period. Try <code>/{command} 10y</code> ({esc(PERIOD_HELP)})."
                )
            period = parse_period(word)
        elif resolve(word) is not None:
            names.append(word)
        else:
            raise UsageError(
                f"I don't know the period “{esc(raw[:20])}”. Use {esc(PERIOD_HELP)}, "
                f"e.g. <code>/{command} 5y</code>"
                + (" (or <code>/chart gap</code> for the valuation gap)" if command == "chart" else "")
                + f"; or name an instrument ({esc(INSTRUMENT_HELP)}), e.g. <code>/{command} sp600 10y</code>."
            )
    if len(names) > 2:
        raise UsageError(f"/{command} compares two instruments, e.g. <code>/{command} sp600/spx 10y</code>.")
    found = [resolve(name) for name in names]
    instruments = [i for i in found if i is not None]
    if len(instruments) != len(names):
        unknown = names[found.index(None)]
        raise UsageError(f"I don't know the instrument “{esc(unknown[:20])}”. Try {esc(INSTRUMENT_HELP)}")
    pair: Pair = HEADLINE
    if len(instruments) == 1:
        pair = (instruments[0], benchmark(instruments[0]))
    elif len(instruments) == 2:
        pair = (instruments[0], instruments[1])
    if pair[0] == pair[1]:
        raise UsageError(
            f"Name something to compare the {esc(pair[0].name)} with, e.g. "
            f"<code>/{command} sp600 {pair[0].short.lower()}</code>."
        )
    return View(period or DEFAULT_PERIOD, pair, total, ratio)


def check_since(period: str | date, shared: pd.DatetimeIndex, command: str) -> None:
    """A since-date the history cannot answer gets a reply that says why and what to ask instead."""
    if not isinstance(period, date) or len(shared) == 0:
        return
    first, last = shared[0].date(), shared[-1].date()
    if period > last:
        raise UsageError(
            f"{day(period)} is after the latest close ({day(last)}): there is nothing to compare yet. "
            f"Pick an earlier date, or try <code>/{command} 1w</code>."
        )
    if period == last:
        before = shared[-2].date() if len(shared) > 1 else None
        offer = f", e.g. <code>/{command} {before.isoformat()}</code>" if before else ""
        raise UsageError(
            f"{day(period)} is the latest close, so there is nothing to compare it with yet. "
            f"Pick an earlier date{offer}."
        )
    if period < first:
        raise UsageError(
            f"The history both indices share starts on {day(first)}, after {day(period)}. "
            f"Try <code>/{command} {first.isoformat()}</code> or <code>/{command} max</code> for all of it."
        )


def measured(period: str | date, shared: pd.DatetimeIndex) -> str | date:
    """The period each index's own return is measured over: "max" is the history both share, so the two
    returns cover the same span (the S&P 500's own history is decades longer)."""
    if period == WHOLE_HISTORY and len(shared):
        return shared[0].date()
    return period


def period_keyboard(
    command: str, current: str | date, view: View | None = None
) -> tuple[tuple[Button, ...], ...]:
    """The period buttons (two rows); under /standing, a third row switches between price and total
    return."""
    view = view or View(current)
    buttons = [
        Button(f"• {key.upper()} •" if key == current else key.upper(), f"{command}:{view.data(key)}")
        for key in PERIOD_KEYS
    ]
    half = (len(buttons) + 1) // 2
    rows = [tuple(buttons[:half]), tuple(buttons[half:])]
    if command == "standing":
        keep = current if current in PERIOD_KEYS else DEFAULT_PERIOD
        rows.append(
            (
                Button(
                    "• Price •" if not view.total else "Price", f"{command}:{view.data(keep, total=False)}"
                ),
                Button(
                    "• Total return •" if view.total else "Total return",
                    f"{command}:{view.data(keep, total=True)}",
                ),
            )
        )
    return tuple(rows)


def _as_of_note(pair: Pair, series: tuple[pd.Series, pd.Series], shared: pd.DatetimeIndex) -> str | None:
    """When an instrument has closes after the last one both share, a line that says the comparison
    stops there (never a silent mix of dates)."""
    if len(shared) == 0:
        return None
    last = shared[-1]
    ahead = [i for i, s in zip(pair, series, strict=True) if len(s) and s.index[-1] > last]
    if not ahead:
        return None
    later = ", ".join(
        f"{i.short} to {day(s.index[-1].date())}"
        for i, s in zip(pair, series, strict=True)
        if len(s) and s.index[-1] > last
    )
    return f"Compared on {day(last.date())}, the last close both have (newer closes: {esc(later)})."


def _close_lines(snapshot: MarketSnapshot, pair: Pair, series: tuple[pd.Series, pd.Series]) -> list[str]:
    """Each instrument's latest close with its own date: how fresh each one is."""
    lines = []
    for inst, values in zip(pair, series, strict=True):
        line = f"<b>{esc(inst.short)}</b> {number(float(values.iloc[-1]))} ({day(values.index[-1].date())} close)"
        note = live_note(snapshot, inst.symbol)
        if note:
            line += f" · {note}"
        lines.append(line)
    return lines


def _average_lines(pair: Pair, series: tuple[pd.Series, pd.Series]) -> list[str]:
    """'RUT 4.57% above its 200-day average of 1,839.67': each one's distance from its own average."""
    lines = []
    for inst, values in zip(pair, series, strict=True):
        mark = metrics.average_distance(values, AVERAGE_SESSIONS)
        if mark is None:
            lines.append(f"{esc(inst.short)}: fewer than {AVERAGE_SESSIONS} closes, no average yet")
            continue
        side = "above" if mark.distance >= 0 else "below"
        lines.append(
            f"{esc(inst.short)} {pct(abs(mark.distance), signed=False)} {side} its {AVERAGE_SESSIONS}-day average "
            f"of {number(mark.average)}"
        )
    return lines


def ratio_lines(pair: Pair, small: pd.Series, large: pd.Series) -> list[str]:
    """The price ratio's percentile, its mean since the shared history starts and over 10 years, and its
    z-score against each (``metrics.ratio_history``)."""
    name = f"{pair[0].short}/{pair[1].short}"
    standing = metrics.ratio_standing(small, large)
    if standing is None:
        return []
    lines = [
        f"<b>{esc(name)} ratio</b> {standing.ratio:.4f}: higher than on {standing.percentile:.0f}% of days since "
        f"{standing.since.year} (low {standing.low:.4f} in {standing.low_date:%b %Y}, "
        f"high {standing.high:.4f} in {standing.high_date:%b %Y})."
    ]
    ratio = metrics.price_ratio(small, large)
    parts = []
    for years, label in ((None, f"since {standing.since.year}"), (10, "over 10 years")):
        history = metrics.ratio_history(ratio, years)
        mean, z = history.mean.iloc[-1], history.z.iloc[-1]
        if mean == mean and z == z:
            parts.append(f"mean {label} {mean:.4f} (z {z:+.2f})".replace("-", "−"))
    if parts:
        lines.append(f"Against its past: {'; '.join(parts)}.")
    return lines


def standing_answer(request: Request, period: str | date, view: View | None = None) -> Answer:
    view = view or View(period)
    if view.total:
        return total_return_answer(request, view)
    pair = view.pair
    small_inst, large_inst = pair
    snapshot = snapshot_with(request.services, small_inst.symbol, large_inst.symbol)
    own = (snapshot.series(small_inst.symbol), snapshot.series(large_inst.symbol))
    shared = shared_days(*own)
    if len(shared) == 0:
        raise UsageError(
            f"The {esc(small_inst.name)} and the {esc(large_inst.name)} have no close on the same day to compare."
        )
    # Every comparison below stands on the last close both have.
    small, large = (s[s.index <= shared[-1]] for s in own)
    check_since(period, shared, "standing")
    start = shared[0].date() if len(shared) else None
    label = period_label(period)
    keys = list(PERIOD_KEYS) if isinstance(period, date) or period in PERIOD_KEYS else [*PERIOD_KEYS, period]
    if isinstance(period, date):
        keys.append("since")

    def ret(series: pd.Series, key: str) -> float | None:
        return metrics.period_return(series, measured(period if key == "since" else key, shared))

    a, b = small_inst.short, large_inst.short
    rows = []
    for key in keys:
        r, s = ret(small, key), ret(large, key)
        gap = (r - s) * 100 if r is not None and s is not None else None
        name = "since" if key == "since" else key.upper()
        marker = "▸" if key == period or (key == "since" and isinstance(period, date)) else " "
        rows.append(f"{marker}{name:<5} {pct(r):>10} {pct(s):>10} {points(gap):>11}")
    table = "\n".join([f" {'':<5} {a:>10} {b:>10} {a + '−' + b:>11}", *rows])

    span = measured(period, shared)
    r_sel, s_sel = metrics.period_return(small, span), metrics.period_return(large, span)
    lead = metrics.relative_performance(small, large, period)
    over = period_phrase(period, start)
    if lead is None:
        headline = f"{over}: the history is too short to compare."
    else:
        verb = "beat" if lead > 0 else "lagged"
        headline = (
            f"{over} the {esc(small_inst.name)} {verb} the {esc(large_inst.name)} by <b>{abs(lead):,.1f} points</b> "
            f"({pct(r_sel)} vs {pct(s_sel)})."
        )

    lines = [f"<b>{esc(small_inst.name)} vs {esc(large_inst.name)}</b> · {esc(label)}", headline, ""]
    lines += _close_lines(snapshot, pair, own)
    note = _as_of_note(pair, own, shared)
    if note:
        lines.append(f"<i>{note}</i>")
    lines += ["", f"<pre>{esc(table)}</pre>", "<b>From the all-time closing high</b>"]
    for inst, series in zip(pair, (small, large), strict=True):
        mark = metrics.high_mark(series)
        if mark is None:
            continue
        where = "at its high of" if mark.below == 0 else f"{pct(mark.below, signed=False)} below its high of"
        lines.append(f"{esc(inst.short)} {where} {number(mark.high)} ({day(mark.high_date)})")
    lines += [f"<b>From the {AVERAGE_SESSIONS}-day average</b>", *_average_lines(pair, (small, large))]
    ratio = ratio_lines(pair, small, large)
    if ratio:
        lines += ["", *ratio]
    lines += ["", footer(request.services, snapshot, None if view.headline else shared[-1].date())]
    return Answer("\n".join(lines), keyboard=period_keyboard("standing", period, view))


def _funds_of(pair: Pair) -> Pair:
    """The funds whose adjusted closes stand for a pair in total-return terms: an index by the first fund
    that holds it."""
    funds = []
    for inst in pair:
        if inst.kind == "etf":
            funds.append(inst)
        elif inst.symbol in PROXY_ETF:
            funds.append(by_symbol(PROXY_ETF[inst.symbol]))
        else:
            raise UsageError(
                f"No fund that holds the {esc(inst.name)} is followed, so there is no total return for it."
            )
    return funds[0], funds[1]


def total_return_answer(request: Request, view: View) -> Answer:
    """Total returns (dividends reinvested) from the funds' adjusted closes, each pair measured to the
    last day both funds have, with each fund's first close as the limit of what it can answer."""
    period = view.period
    pairs = TOTAL_RETURN_PAIRS if view.headline else (_funds_of(view.pair),)
    snapshot = request.services.market.snapshot
    wanted = [f.symbol for pair in pairs for f in pair]
    missing = [s for s in wanted if snapshot.adjusted_series(s).empty]
    if len(missing) == len(wanted):
        snapshot_with(request.services, *wanted)  # says why when closes are missing altogether
        raise UsageError(
            "No adjusted closes are cached yet, so there is no total return to show. Please ask later."
        )
    label = period_label(period)
    title = "Total return" + (
        "" if view.headline else f": {esc(pairs[0][0].short)} vs {esc(pairs[0][1].short)}"
    )
    lines = [f"<b>{title}</b> · {esc(label)}", "<i>dividends reinvested: the funds' adjusted closes</i>", ""]
    last_days = []
    for small, large in pairs:
        adjusted = {f.symbol: snapshot.adjusted_series(f.symbol) for f in (small, large)}
        if any(s.empty for s in adjusted.values()):
            gone = ", ".join(f.short for f in (small, large) if adjusted[f.symbol].empty)
            lines += [f"<b>{small.short} vs {large.short}</b>: no adjusted closes for {esc(gone)}.", ""]
            continue
        shared = shared_days(*adjusted.values())
        if isinstance(period, date) and len(shared) and not shared[0].date() <= period < shared[-1].date():
            lines += [
                f"<b>{small.short} vs {large.short}</b>: their shared history runs from {day(shared[0].date())} "
                f"to {day(shared[-1].date())}, which does not answer since {day(period)}.",
                "",
            ]
            continue
        chosen = metrics.total_returns(adjusted, period)
        if chosen.as_of is None:
            continue
        last_days.append(chosen.as_of)
        r, s = chosen.returns[small.symbol], chosen.returns[large.symbol]
        over = period_phrase(period, shared[0].date() if len(shared) else None)
        if r is None or s is None:
            short = [f for f, value in ((small, r), (large, s)) if value is None]
            firsts = ", ".join(f"{f.short} from {day(chosen.inception[f.symbol])}" for f in short)
            sentence = (
                f"<b>{small.short} vs {large.short}</b>: {label} reaches back before the fund's first close "
                f"({esc(firsts)}, its inception in this history): no total return over that period."
            )
        else:
            gap = (r - s) * 100
            verb = "beat" if gap > 0 else "lagged"
            sentence = (
                f"<b>{small.short} vs {large.short}</b>: {over} {small.short} {verb} {large.short} by "
                f"<b>{abs(gap):,.1f} points</b> in total return ({pct(r)} vs {pct(s)})."
            )
        lines.append(sentence)
        rows = []
        for key in PERIOD_KEYS:
            row = metrics.total_returns(adjusted, key)
            a, b = row.returns[small.symbol], row.returns[large.symbol]
            difference = (a - b) * 100 if a is not None and b is not None else None
            marker = "▸" if key == period else " "
            rows.append(f"{marker}{key.upper():<5} {pct(a):>10} {pct(b):>10} {points(difference):>11}")
        head = f" {'':<5} {small.short:>10} {large.short:>10} {small.short + '−' + large.short:>11}"
        lines.append(f"<pre>{esc(chr(10).join([head, *rows]))}</pre>")
        lines.append(
            f"<i>measured to {day(chosen.as_of)}, the last adjusted close both have; "
            f"{small.short} from {day(chosen.inception[small.symbol])}, {large.short} from "
            f"{day(chosen.inception[large.symbol])}</i>"
        )
        lines.append("")
    if view.headline:
        price = metrics.relative_performance(
            snapshot.series(RUT.symbol), snapshot.series(GSPC.symbol), period
        )
        if price is not None:
            lines.append(f"In price terms (the indices, no dividends) RUT−SPX: {points(price)}.")
            lines.append("")
    newest = max(last_days) if last_days else None
    lines.append(footer(request.services, snapshot, newest))
    return Answer("\n".join(lines), keyboard=period_keyboard("standing", period, view))


def standing(request: Request) -> Answer:
    view = parse_view(request.args, "standing")
    return standing_answer(request, view.period, view)


def chart_answer(request: Request, period: str | date, view: View | None = None) -> Answer:
    view = view or View(period)
    if view.ratio:
        return ratio_chart_answer(request, view)
    small_inst, large_inst = view.pair
    snapshot = snapshot_with(request.services, small_inst.symbol, large_inst.symbol)
    own = (snapshot.series(small_inst.symbol), snapshot.series(large_inst.symbol))
    shared = shared_days(*own)
    check_since(period, shared, "chart")
    small, large = (s[s.index <= shared[-1]] for s in own) if len(shared) else own
    frame = snapshot.closes[[small_inst.symbol, large_inst.symbol]].dropna(how="all")
    try:
        png = render_comparison(frame, period, source_note=snapshot.source or "", pair=view.pair)
    except ValueError as exc:
        raise UsageError(f"No chart for {esc(period_label(period))}: {esc(exc)}") from None
    span = measured(period, shared)
    title = period_label(period)
    if period == WHOLE_HISTORY and len(shared):
        title += f" (since {day(shared[0].date())})"
    lines = [
        f"<b>{esc(small_inst.name)} vs {esc(large_inst.name)}</b> · {esc(title)}, rebased to 100, "
        f"with each one's {AVERAGE_SESSIONS}-day average",
        f"{esc(small_inst.short)} {pct(metrics.period_return(small, span))} · "
        f"{esc(large_inst.short)} {pct(metrics.period_return(large, span))}",
    ]
    note = _as_of_note(view.pair, own, shared)
    if note:
        lines.append(f"<i>{note}</i>")
    lines.append(footer(request.services, snapshot, None if view.headline else shared[-1].date()))
    name = period.isoformat() if isinstance(period, date) else period
    suffix = "" if view.headline else f"-{small_inst.file_stem}-{large_inst.file_stem}".lower()
    return Answer(
        "\n".join(lines),
        photo=png,
        photo_name=f"capgap-{name}{suffix}.png",
        keyboard=period_keyboard("chart", period, view),
    )


def ratio_chart_answer(request: Request, view: View) -> Answer:
    """/chart ratio: the price ratio over the period against its mean and 10th/90th percentiles since the
    shared history starts."""
    period = view.period
    small_inst, large_inst = view.pair
    snapshot = snapshot_with(request.services, small_inst.symbol, large_inst.symbol)
    own = (snapshot.series(small_inst.symbol), snapshot.series(large_inst.symbol))
    ratio = metrics.price_ratio(*own)
    check_since(period, pd.DatetimeIndex(ratio.index), "chart")
    name = f"{small_inst.short}/{large_inst.short}"
    try:
        png = render_ratio(ratio, period, name=name, source_note=snapshot.source or "")
    except ValueError as exc:
        raise UsageError(f"No chart for {esc(period_label(period))}: {esc(exc)}") from None
    lines = [
        f"<b>{esc(name)} ratio</b> · {esc(period_label(period))}, with its mean and 10th–90th percentiles"
    ]
    lines += ratio_lines(view.pair, *own)
    note = _as_of_note(view.pair, own, pd.DatetimeIndex(ratio.index))
    if note:
        lines.append(f"<i>{note}</i>")
    lines.append(footer(request.services, snapshot, None if view.headline else ratio.index[-1].date()))
    label = period.isoformat() if isinstance(period, date) else period
    return Answer(
        "\n".join(lines),
        photo=png,
        photo_name=f"capgap-ratio-{label}-{small_inst.file_stem}-{large_inst.file_stem}.png".lower(),
        keyboard=period_keyboard("chart", period, view),
    )


def chart(request: Request) -> Answer:
    if request.args and request.args[0].lower() == "gap":
        return gap_chart(request)
    view = parse_view(request.args, "chart")
    return chart_answer(request, view.period, view)


COMMANDS = (
    Command(
        "standing",
        "Russell 2000 vs S&P 500 (or any pair): returns 1D–20Y and MAX, the high, the 200-day average, the ratio",
        "/standing [period] [tr] [instrument | a/b]",
        ("/standing", "/standing 10y", "/standing tr 10y", "/standing sp600 10y", "/standing rsp/spy 5y"),
        standing,
        market_only=True,
    ),
    Command(
        "chart",
        "Chart: two instruments rebased to 100 with 200-day averages and drawdowns; /chart ratio; /chart gap",
        "/chart [period] [a/b | ratio | gap]",
        ("/chart 5y", "/chart sp600/spx 10y", "/chart ratio max", "/chart gap"),
        chart,
        market_only=True,
    ),
)


def pressed(
    build: Callable[[Request, str | date, View], Answer], command: str
) -> Callable[[Request, str], Answer]:
    """A button's handler: its data is the typed arguments of one of the keyboard's views, joined by ':',
    and is parsed like typed input; the period must be one of the keyboard's."""

    def on_button(request: Request, data: str) -> Answer:
        parts = tuple(data.split(":"))
        if not parts or parts[0] not in PERIOD_KEYS or len(data) > 60:
            raise UsageError("That button is no longer valid. Send the command again.")
        try:
            view = parse_view(parts, command)
        except UsageError:
            raise UsageError("That button is no longer valid. Send the command again.") from None
        return build(request, view.period, view)

    return on_button


BUTTONS = (
    ButtonFlow("standing", pressed(standing_answer, "standing")),
    ButtonFlow("chart", pressed(chart_answer, "chart")),
)


def standing_digest(services: Services) -> str:
    """The daily digest: both closes, today's and this year's change, distance from the high."""
    snapshot = snapshot_with(services, RUT.symbol, GSPC.symbol)
    lines = ["📰 <b>capgap daily digest</b>"]
    for inst in (RUT, GSPC):
        series = snapshot.series(inst.symbol)
        mark = metrics.high_mark(series)
        below = "" if mark is None else f" · {pct(mark.below, signed=False)} below high"
        lines.append(
            f"<b>{inst.short}</b> {number(float(series.iloc[-1]))} · 1D {pct(metrics.period_return(series, '1d'))}"
            f" · YTD {pct(metrics.period_return(series, 'ytd'))}{below}"
        )
    lead = metrics.relative_performance(snapshot.series(RUT.symbol), snapshot.series(GSPC.symbol), "ytd")
    lines.append(f"RUT−SPX this year: {points(lead)}")
    lines += ["", footer(services, snapshot)]
    return "\n".join(lines)
