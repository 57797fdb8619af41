"""Charts sent as Telegram photos.

matplotlib is imported inside the render function: most commands never draw, and importing it costs
far more than everything else the bot loads. Figures are built with the object-oriented ``Figure`` API
on an explicit Agg canvas, never through pyplot: no backend switch, no global figure registry to leak
into or to close, so a render can run in a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from market.instruments import GSPC, RUT, Instrument
from market.metrics import base_date, drawdown, moving_average, rebased

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from market.published import PublishedGap

# 8 × 6.67 in at 150 dpi = 1200 × 1000 px: sharp on a phone after Telegram's downscaling.
_SIZE_INCHES = (8.0, 20.0 / 3.0)
_DPI = 150

# An orange/blue pair that stays distinct for colour-blind readers and in Telegram's dark theme preview:
# the first of a pair (the smaller caps) orange, the second blue.
_PAIR_COLOURS = ("#e66100", "#1f5fad")
_COLOURS = {RUT.symbol: _PAIR_COLOURS[0], GSPC.symbol: _PAIR_COLOURS[1]}
# The moving average drawn beside each line, in sessions.
CHART_AVERAGE = 200

_SHADE_ALPHA = 0.16
_TITLE_SIZE = 17
_TEXT_SIZE = 13
_TICK_SIZE = 12


def render_comparison(
    closes: pd.DataFrame,
    period: str | date,
    *,
    end: date | None = None,
    title: str | None = None,
    source_note: str = "",
    pair: tuple[Instrument, Instrument] = (RUT, GSPC),
) -> bytes:
    """A PNG of two instruments (the Russell 2000 against the S&P 500 unless ``pair`` says otherwise) over
    ``period`` as of ``end`` (None: the last day both have).

    Top: both rebased to 100 at the period's base date (``market.metrics.base_date`` on the dates both have
    a close), with their final values marked, and each one's 200-session moving average as a thin dashed
    line of its colour, rebased alike and drawn only where it is defined (200 closes of its own history).
    Bottom: each one's distance below its all-time closing high in the history up to the last shared day,
    in percent, over the same window.

    Raises ValueError with a readable message when the frame lacks either instrument or the history does
    not cover the period.
    """
    series = pair
    symbols = [i.symbol for i in series]
    colours = dict(zip(symbols, _PAIR_COLOURS, strict=True))
    missing = [s for s in symbols if s not in closes.columns]
    if missing:
        raise ValueError(f"no closes for {', '.join(missing)} to chart")
    history = closes[symbols].astype(float)
    if end is not None:
        history = history.loc[history.index <= _day(end)]
    shared = history.dropna(how="any")
    if shared.empty:
        raise ValueError(f"no day on which both the {series[0].name} and the {series[1].name} have a close")
    as_of = shared.index[-1]
    history = history.loc[history.index <= as_of]
    base = base_date(pd.DatetimeIndex(shared.index), as_of, period)
    if base is None:
        raise ValueError(_not_covered(period, shared.index[0], as_of))

    levels = rebased(shared, base)
    # Each average is over the instrument's own closes, from before the window where the history has them.
    averages = {}
    for symbol in symbols:
        own = history[symbol].dropna()
        average = moving_average(own, CHART_AVERAGE).loc[base:as_of]
        averages[symbol] = average / float(own.loc[base]) * 100.0
    # Drawdown needs each index's own full history: the all-time high may predate the window.
    below_high = {symbol: drawdown(history[symbol]).loc[base:as_of] * 100.0 for symbol in symbols}

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=_SIZE_INCHES, dpi=_DPI, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    markers = "o" if len(levels) <= 3 else ""

    for instrument in series:
        line = levels[instrument.symbol]
        colour = colours[instrument.symbol]
        top.plot(line.index, line.to_numpy(), color=colour, lw=2.2, marker=markers, label=instrument.name)
    for instrument in series:
        average = averages[instrument.symbol]
        if average.notna().any():
            top.plot(
                average.index,
                average.to_numpy(),
                color=colours[instrument.symbol],
                lw=1.1,
                ls=(0, (4, 2)),
                alpha=0.85,
                label=f"{instrument.short} {CHART_AVERAGE}-day average",
            )
    top.axhline(100.0, color="#888888", lw=0.9, ls="--", zorder=0)
    top.set_ylabel(f"Rebased: 100 = {_long_date(base)}", fontsize=_TEXT_SIZE)

    for instrument in series:
        fall = below_high[instrument.symbol]
        bottom.plot(fall.index, fall.to_numpy(), color=colours[instrument.symbol], lw=1.6, marker=markers)
    _shade_below_high(bottom, below_high, symbols, colours)
    bottom.set_ylabel("Below all-time high", fontsize=_TEXT_SIZE)
    bottom.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    lowest = min(float(fall.min()) for fall in below_high.values())
    bottom.set_ylim(min(lowest * 1.12, -1.0), 0.5)

    _date_axis(bottom, as_of - base)
    for axes in (top, bottom):
        axes.tick_params(labelsize=_TICK_SIZE)
        axes.grid(True, color="#e4e4e4", lw=0.8)
        axes.spines[["top", "right"]].set_visible(False)
        axes.margins(x=0.01)

    figure.suptitle(title or f"{series[0].name} vs {series[1].name}", fontsize=_TITLE_SIZE, fontweight="bold")
    subtitle = f"{_period_label(period)} · as of {_long_date(as_of)}"
    if source_note:
        subtitle += f" · {source_note}"
    # The legend sits in a row of its own between the subtitle and the plot, so it never covers a line.
    legend_rows = 2 if any(average.notna().any() for average in averages.values()) else 1
    top.set_title(
        subtitle, fontsize=_TEXT_SIZE, color="#555555", loc="left", pad=_TEXT_SIZE * (0.6 + 1.8 * legend_rows)
    )
    _legend_above(top, _TEXT_SIZE)
    _mark_last_values(top, {symbol: levels[symbol] for symbol in symbols}, "{:.1f}", colours)
    _mark_last_values(bottom, below_high, "{:.1f}%", colours)

    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


_RATIO_COLOUR = "#5b3a8c"
_BAND_COLOUR = "#8c8c8c"


def render_ratio(
    ratio: pd.Series,
    period: str | date,
    *,
    name: str,
    bands: tuple[float, float] = (10.0, 90.0),
    source_note: str = "",
) -> bytes:
    """A PNG of a price ratio (``name``, e.g. "RUT/SPX") over ``period``, against its own whole history:
    its mean since the series starts (a dashed line) and the ``bands`` percentiles of every day since then
    (dotted lines, the band between them shaded), with the latest value marked.

    The mean and the percentiles are of the whole history up to the last day, the figures /standing
    shows, so the window only frames them. Raises ValueError when the history does not cover the period.
    """
    values = ratio.dropna()
    values = values[values > 0]
    if len(values) < 2:
        raise ValueError(f"no history of the {name} ratio to draw")
    as_of = values.index[-1]
    base = base_date(pd.DatetimeIndex(values.index), as_of, period)
    if base is None:
        raise ValueError(_not_covered(period, values.index[0], as_of))
    window = values.loc[base:]
    mean = float(values.mean())
    low, high = (float(np.percentile(values.to_numpy(), b)) for b in bands)
    since = _long_date(values.index[0])

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE_INCHES, dpi=_DPI, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots()
    markers = "o" if len(window) <= 3 else ""
    axes.axhspan(low, high, color=_BAND_COLOUR, alpha=0.10, lw=0)
    axes.axhline(
        low,
        color=_BAND_COLOUR,
        lw=1.2,
        ls=":",
        label=f"{bands[0]:.0f}th–{bands[1]:.0f}th percentile since {since}",
    )
    axes.axhline(high, color=_BAND_COLOUR, lw=1.2, ls=":")
    axes.axhline(mean, color="#333333", lw=1.3, ls="--", label=f"mean since {since}: {mean:.4f}")
    axes.plot(window.index, window.to_numpy(), color=_RATIO_COLOUR, lw=2.0, marker=markers, label=name)
    for level, text in ((low, f"{bands[0]:.0f}th {low:.4f}"), (high, f"{bands[1]:.0f}th {high:.4f}")):
        axes.annotate(
            text,
            xy=(0.0, level),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=_TICK_SIZE - 1,
            color="#444444",
            # On a white box over the line, so the figure stays legible where the ratio passes under it.
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
            zorder=5,
        )
    _label_end(
        axes, f"{float(window.iloc[-1]):.4f}", (window.index[-1], float(window.iloc[-1])), 0.0, _RATIO_COLOUR
    )
    axes.set_ylabel(f"{name} (price ratio)", fontsize=_TEXT_SIZE)
    _date_axis(axes, as_of - base)
    axes.tick_params(labelsize=_TICK_SIZE)
    axes.grid(True, color="#e4e4e4", lw=0.8)
    axes.spines[["top", "right"]].set_visible(False)
    axes.margins(x=0.01)
    figure.suptitle(f"{name} ratio against its history", fontsize=_TITLE_SIZE, fontweight="bold")
    subtitle = f"{_period_label(period)} · as of {_long_date(as_of)}"
    if source_note:
        subtitle += f" · {source_note}"
    axes.set_title(subtitle, fontsize=_TEXT_SIZE, color="#555555", loc="left", pad=_TEXT_SIZE * 4.2)
    _legend_above(axes, _TICK_SIZE)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


# The gap chart: P/B in the small-cap orange, P/E in a green that stays apart from it for colour-blind
# readers; others' published readings in the same colour as their measure, as hollow diamonds.
_GAP_COLOURS = {"pb": "#e66100", "pe": "#2a9d5c"}
_GAP_NAMES = {"pb": "P/B", "pe": "P/E"}


def render_gap(
    pb: pd.Series,
    pe: pd.Series,
    published: Sequence[PublishedGap] = (),
    *,
    source_note: str = "",
    note: str = "",
) -> bytes:
    """A PNG of the valuation gap over time: capgap's recorded readings (fractions indexed by date) as
    lines, P/B and P/E, and ``published`` readings as marked points labelled with who said it; ``note``
    is written under the plot.

    Raises ValueError when neither series has a reading.
    """
    lines = {measure: series.dropna().sort_index() for measure, series in (("pb", pb), ("pe", pe))}
    lines = {measure: series for measure, series in lines.items() if not series.empty}
    if not lines:
        raise ValueError("no recorded reading of the gap to draw")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=_SIZE_INCHES, dpi=_DPI, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots()
    for measure, series in lines.items():
        markers = "o" if len(series) <= 40 else ""
        axes.plot(
            series.index,
            series.to_numpy() * 100.0,
            color=_GAP_COLOURS[measure],
            lw=2.2,
            marker=markers,
            markersize=4,
            label=f"capgap {_GAP_NAMES[measure]} (IWM/IVV, VTWO/VOO)",
        )
    for measure in ("pb", "pe"):
        points = [p for p in published if p.measure == measure]
        if not points:
            continue
        axes.scatter(
            pd.DatetimeIndex([_day(p.as_of) for p in points]),
            [p.gap * 100.0 for p in points],
            s=90,
            marker="D",
            facecolors="white",
            edgecolors=_GAP_COLOURS[measure],
            linewidths=2.0,
            zorder=3,
            label=f"published {_GAP_NAMES[measure]} (others' basis)",
        )
    for measure, series in lines.items():
        _label_end(
            axes,
            f"{series.iloc[-1] * 100:.1f}%",
            (series.index[-1], float(series.iloc[-1]) * 100.0),
            0.0,
            _GAP_COLOURS[measure],
        )
    axes.axhline(0.0, color="#888888", lw=0.9, ls="--", zorder=0)
    axes.margins(x=0.04, y=0.12)
    key = _label_published(axes, published)
    axes.set_ylabel("Small-cap discount to large caps", fontsize=_TEXT_SIZE)
    axes.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    locator = AutoDateLocator(minticks=3, maxticks=7)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=False))
    axes.tick_params(labelsize=_TICK_SIZE)
    axes.grid(True, color="#e4e4e4", lw=0.8)
    axes.spines[["top", "right"]].set_visible(False)

    newest = max(series.index[-1] for series in lines.values())
    figure.suptitle("Valuation gap: small caps vs large caps", fontsize=_TITLE_SIZE, fontweight="bold")
    subtitle = f"1 − small ÷ large multiple of the funds' holdings · as of {_long_date(newest)}"
    if source_note:
        subtitle += f" · {source_note}"
    axes.set_title(subtitle, fontsize=_TEXT_SIZE - 1, color="#555555", loc="left", pad=_TEXT_SIZE * 4.2)
    _legend_above(axes, _TICK_SIZE)
    below = ["   ".join(key[start : start + 2]) for start in range(0, len(key), 2)]
    if key:
        below[0] = "Published: " + below[0]
    if note:
        below.append(note)
    if below:
        # A figure-level x label, so the constrained layout makes room for it under the tick labels.
        figure.supxlabel("\n".join(below), x=0.01, ha="left", fontsize=_TICK_SIZE - 1, color="#444444")
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


def _label_published(axes: Axes, published: Sequence[PublishedGap]) -> list[str]:
    """Number each published point, oldest first, just above it; return the key that names them. Names
    beside the points would collide with each other and with the lines whenever two readings are close."""
    key = []
    for number, point in enumerate(sorted(published, key=lambda p: (p.as_of, p.measure)), start=1):
        axes.annotate(
            str(number),
            xy=(_day(point.as_of), point.gap * 100.0),
            xytext=(0, 9),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=_TICK_SIZE - 1,
            fontweight="bold",
            color=_GAP_COLOURS[point.measure],
            zorder=4,
        )
        key.append(
            f"{number} {_short_who(point.who)}, {point.as_of:%b %Y}: "
            f"{_GAP_NAMES[point.measure]} {point.gap * 100:.0f}%"
        )
    return key


def _short_who(who: str) -> str:
    """The firm or author a label has room for: 'Tom Lee, Fundstrat' -> 'Fundstrat'."""
    first = who.split("(")[0].strip()
    return first.rsplit(",", 1)[-1].strip() if "," in first else first


def _mark_last_values(
    axes: Axes, lines: dict[str, pd.Series], template: str, colours: dict[str, str] = _COLOURS
) -> None:
    """Write each line's final value beside its end, pushed apart when the two ends nearly touch.

    Call it once the y limits are final: the push is worked out from where the ends fall on the page.
    """
    ends = {symbol: float(line.iloc[-1]) for symbol, line in lines.items()}
    lower, upper = sorted(ends, key=lambda symbol: ends[symbol])
    to_points = 72.0 / axes.figure.dpi
    pixel_gap = axes.transData.transform((0, ends[upper]))[1] - axes.transData.transform((0, ends[lower]))[1]
    push = max(0.0, (_TEXT_SIZE * 1.3 - pixel_gap * to_points) / 2.0)
    for symbol, offset in ((lower, -push), (upper, push)):
        line = lines[symbol]
        _label_end(
            axes,
            template.format(ends[symbol]).replace("-", "\N{MINUS SIGN}"),
            (line.index[-1], ends[symbol]),
            offset,
            colours[symbol],
        )


def _shade_below_high(
    axes: Axes,
    below_high: dict[str, pd.Series],
    symbols: Sequence[str] = (RUT.symbol, GSPC.symbol),
    colours: dict[str, str] = _COLOURS,
) -> None:
    """Shade each index's fall in its colour without the two areas overlapping into a muddy mix: the band
    from zero down to the shallower index takes that index's colour, the band between the lines the
    deeper one's."""
    from matplotlib.dates import date2num

    both = pd.DataFrame(below_high).dropna()
    if both.empty:
        return
    # The colours swap where the lines cross, so the crossings become points of their own; otherwise
    # each swap leaves a one-day wedge unshaded (or, with fill_between's interpolate, misdrawn).
    first, second = symbols
    days, small, large = _with_crossings(
        np.asarray(date2num(both.index)), both[first].to_numpy(), both[second].to_numpy()
    )
    shallower, deeper = np.maximum(small, large), np.minimum(small, large)
    small_colour, large_colour = colours[first], colours[second]
    for where, near_zero, further_down in (
        (small <= large, large_colour, small_colour),
        (small >= large, small_colour, large_colour),
    ):
        axes.fill_between(days, shallower, 0.0, where=where, color=near_zero, alpha=_SHADE_ALPHA, lw=0)
        axes.fill_between(days, deeper, shallower, where=where, color=further_down, alpha=_SHADE_ALPHA, lw=0)


def _with_crossings(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``a`` and ``b`` with a point added wherever the straight segments of ``a`` and ``b`` cross."""
    gap = a - b
    before = np.nonzero(gap[:-1] * gap[1:] < 0)[0]
    share = gap[before] / (gap[before] - gap[before + 1])
    x_cross = x[before] + share * (x[before + 1] - x[before])
    y_cross = a[before] + share * (a[before + 1] - a[before])
    at = before + 1
    return np.insert(x, at, x_cross), np.insert(a, at, y_cross), np.insert(b, at, y_cross)


def _not_covered(period: str | date, first: pd.Timestamp, as_of: pd.Timestamp) -> str:
    """Why ``period`` has no base date, in the reader's terms: the dates the history has."""
    starts = f"the history both indices share starts on {_long_date(first)}"
    if isinstance(period, date):
        since = _day(period)
        if since > as_of:
            return f"{_long_date(since)} is after the latest close ({_long_date(as_of)})"
        return f"{starts}, after {_long_date(since)}: ask for {first:%Y-%m-%d} or max"
    return f"{starts}: {period.strip().upper()} back from {_long_date(as_of)} reaches before it"


def _date_axis(axes: Axes, span: pd.Timedelta) -> None:
    """Dates along ``axes``: a tick a day for two weeks or less (else hour ticks fall between two closes),
    else a few concise ones."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DateFormatter, DayLocator

    if span <= pd.Timedelta(days=14):
        axes.xaxis.set_major_locator(DayLocator())
        axes.xaxis.set_major_formatter(DateFormatter("%d %b"))
    else:
        locator = AutoDateLocator(minticks=3, maxticks=6)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=False))


def _period_label(period: str | date) -> str:
    if isinstance(period, date):
        return f"Since {_long_date(_day(period))}"
    return period.strip().upper()


def _long_date(day: date) -> str:
    """A date as 9 Jan 2024: no zero padding, without a platform-specific strftime flag."""
    return f"{day.day} {day:%b %Y}"


def _day(value: date) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def _legend_above(axes: Axes, fontsize: float) -> None:
    """The legend in a row of its own above the plot, two entries a line, so it never covers a line."""
    axes.legend(
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=2,
        fontsize=fontsize,
        frameon=False,
        borderaxespad=0.2,
        borderpad=0.0,
        handlelength=1.6,
    )


def _label_end(axes: Axes, text: str, at: tuple[Any, float], raise_by: float, colour: str) -> None:
    """``text`` in bold just right of a line's last point (``raise_by`` points up, to keep labels apart)."""
    axes.annotate(
        text,
        xy=at,
        xytext=(6, raise_by),
        textcoords="offset points",
        va="center",
        ha="left",
        fontsize=_TEXT_SIZE,
        fontweight="bold",
        color=colour,
        annotation_clip=False,
    )
