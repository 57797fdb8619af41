"""/standing and /chart: where the Russell 2000 and the S&P 500 stand, in numbers and in a picture."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from bot.answers import Answer, Button, ButtonFlow, Command, Request, UsageError
from bot.charts import render_comparison
from bot.commands.valuation import gap_chart
from bot.format import day, esc, number, pct, points
from bot.provenance import footer, live_note, snapshot_with
from market import metrics
from market.instruments import GSPC, RUT
from market.metrics import ACCEPTED_PERIODS, PERIODS, WHOLE_HISTORY, parse_period

if TYPE_CHECKING:
    from bot.services import Services

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


def parse_period_arg(args: tuple[str, ...], command: str) -> str | date:
    if not args:
        return DEFAULT_PERIOD
    if len(args) > 1:
        raise UsageError(
            f"/{command} takes one period. Try <code>/{command} 10y</code> ({esc(PERIOD_HELP)})."
        )
    period = parse_period(args[0])
    if period is None:
        raise UsageError(
            f"I don't know the period “{esc(args[0][:20])}”. Use {esc(PERIOD_HELP)}, "
            f"e.g. <code>/{command} 5y</code>"
            + (" (or <code>/chart gap</code> for the valuation gap)." if command == "chart" else ".")
        )
    return period


def shared_days(rut: pd.Series, spx: pd.Series) -> pd.DatetimeIndex:
    """The dates on which both indices have a close: what a comparison can stand on."""
    return pd.DatetimeIndex(rut.dropna().index.intersection(spx.dropna().index)).sort_values()


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


def period_keyboard(command: str, current: str | date) -> tuple[tuple[Button, ...], ...]:
    buttons = [
        Button(f"• {key.upper()} •" if key == current else key.upper(), f"{command}:{key}")
        for key in PERIOD_KEYS
    ]
    half = (len(buttons) + 1) // 2
    return (tuple(buttons[:half]), tuple(buttons[half:]))


def standing_answer(request: Request, period: str | date) -> Answer:
    snapshot = snapshot_with(request.services, RUT.symbol, GSPC.symbol)
    rut, spx = snapshot.series(RUT.symbol), snapshot.series(GSPC.symbol)
    shared = shared_days(rut, spx)
    check_since(period, shared, "standing")
    start = shared[0].date() if len(shared) else None
    label = period_label(period)
    keys = list(PERIOD_KEYS) if isinstance(period, date) or period in PERIOD_KEYS else [*PERIOD_KEYS, period]
    if isinstance(period, date):
        keys.append("since")

    def ret(series: pd.Series, key: str) -> float | None:
        return metrics.period_return(series, measured(period if key == "since" else key, shared))

    rows = []
    for key in keys:
        r, s = ret(rut, key), ret(spx, key)
        gap = (r - s) * 100 if r is not None and s is not None else None
        name = "since" if key == "since" else key.upper()
        marker = "▸" if key == period or (key == "since" and isinstance(period, date)) else " "
        rows.append(f"{marker}{name:<5} {pct(r):>10} {pct(s):>10} {points(gap):>11}")
    table = "\n".join([f" {'':<5} {'RUT':>10} {'SPX':>10} {'RUT−SPX':>11}", *rows])

    span = measured(period, shared)
    r_sel, s_sel = metrics.period_return(rut, span), metrics.period_return(spx, span)
    lead = metrics.relative_performance(rut, spx, period)
    over = period_phrase(period, start)
    if lead is None:
        headline = f"{over}: the history is too short to compare."
    else:
        verb = "beat" if lead > 0 else "lagged"
        headline = (
            f"{over} the {esc(RUT.name)} {verb} the {esc(GSPC.name)} by <b>{abs(lead):,.1f} points</b> "
            f"({pct(r_sel)} vs {pct(s_sel)})."
        )

    lines = [f"<b>{esc(RUT.name)} vs {esc(GSPC.name)}</b> · {esc(label)}", headline, ""]
    for inst, series in ((RUT, rut), (GSPC, spx)):
        last_day = series.index[-1].date()
        line = f"<b>{inst.short}</b> {number(float(series.iloc[-1]))} ({day(last_day)} close)"
        note = live_note(snapshot, inst.symbol)
        if note:
            line += f" · {note}"
        lines.append(line)
    lines += ["", f"<pre>{esc(table)}</pre>", "<b>From the all-time closing high</b>"]
    for inst, series in ((RUT, rut), (GSPC, spx)):
        mark = metrics.high_mark(series)
        if mark is None:
            continue
        where = "at its high of" if mark.below == 0 else f"{pct(mark.below, signed=False)} below its high of"
        lines.append(f"{inst.short} {where} {number(mark.high)} ({day(mark.high_date)})")
    ratio = metrics.ratio_standing(rut, spx)
    if ratio is not None:
        lines += [
            "",
            f"<b>RUT/SPX ratio</b> {ratio.ratio:.4f}: higher than on {ratio.percentile:.0f}% of days since "
            f"{ratio.since.year} (low {ratio.low:.4f} in {ratio.low_date:%b %Y}, "
            f"high {ratio.high:.4f} in {ratio.high_date:%b %Y}).",
        ]
    lines += ["", footer(request.services, snapshot)]
    return Answer("\n".join(lines), keyboard=period_keyboard("standing", period))


def standing(request: Request) -> Answer:
    return standing_answer(request, parse_period_arg(request.args, "standing"))


def chart_answer(request: Request, period: str | date) -> Answer:
    snapshot = snapshot_with(request.services, RUT.symbol, GSPC.symbol)
    rut, spx = snapshot.series(RUT.symbol), snapshot.series(GSPC.symbol)
    shared = shared_days(rut, spx)
    check_since(period, shared, "chart")
    frame = snapshot.closes[[RUT.symbol, GSPC.symbol]].dropna(how="all")
    try:
        png = render_comparison(frame, period, source_note=snapshot.source or "")
    except ValueError as exc:
        raise UsageError(f"No chart for {esc(period_label(period))}: {esc(exc)}") from None
    span = measured(period, shared)
    title = period_label(period)
    if period == WHOLE_HISTORY and len(shared):
        title += f" (since {day(shared[0].date())})"
    caption = (
        f"<b>{esc(RUT.name)} vs {esc(GSPC.name)}</b> · {esc(title)}, rebased to 100\n"
        f"RUT {pct(metrics.period_return(rut, span))} · SPX {pct(metrics.period_return(spx, span))}\n"
        f"{footer(request.services, snapshot)}"
    )
    name = period.isoformat() if isinstance(period, date) else period
    return Answer(
        caption,
        photo=png,
        photo_name=f"capgap-{name}.png",
        keyboard=period_keyboard("chart", period),
    )


def chart(request: Request) -> Answer:
    if request.args and request.args[0].lower() == "gap":
        return gap_chart(request)
    return chart_answer(request, parse_period_arg(request.args, "chart"))


COMMANDS = (
    Command(
        "standing",
        "Russell 2000 vs S&P 500: returns 1D–20Y and MAX, distance from the high",
        "/standing [period]",
        ("/standing", "/standing 10y", "/standing 2020-03-23"),
        standing,
        market_only=True,
    ),
    Command(
        "chart",
        "Chart: both indices rebased to 100, with drawdowns; /chart gap: the valuation gap",
        "/chart [period | gap]",
        ("/chart 5y", "/chart gap"),
        chart,
        market_only=True,
    ),
)


def pressed(build: Callable[[Request, str | date], Answer]) -> Callable[[Request, str], Answer]:
    """A period button's handler: its data must be one of the keyboard's periods."""

    def on_button(request: Request, data: str) -> Answer:
        if data not in PERIOD_KEYS:
            raise UsageError("That button is no longer valid. Send the command again.")
        return build(request, data)

    return on_button


BUTTONS = (
    ButtonFlow("standing", pressed(standing_answer)),
    ButtonFlow("chart", pressed(chart_answer)),
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
