"""/gap: how much cheaper small caps are than large caps on price-to-book."""

from __future__ import annotations

from bot.answers import Answer, Command, Request, UsageError
from bot.format import day, esc, number
from market import metrics
from market.instruments import IWM, SPY

# Changes shown when the store holds snapshots that far back.
LOOKBACKS = ((7, "1 week"), (30, "1 month"), (91, "3 months"), (365, "1 year"))


def gap(request: Request) -> Answer:
    if request.args:
        raise UsageError("/gap takes no arguments: it shows the valuation gap between IWM and SPY.")
    snapshot = request.services.market.snapshot
    history = metrics.gap_history(snapshot.funds, IWM.symbol, SPY.symbol)
    if not history:
        known = [
            s for s in (IWM.symbol, SPY.symbol) if (f := snapshot.fund(s)) and f.price_to_book is not None
        ]
        missing = [s for s in (IWM.symbol, SPY.symbol) if s not in known]
        source = request.services.market.source.name
        return Answer(
            "<b>Valuation gap</b>: not available.\n"
            f"{esc(source)} has no price-to-book for {' and '.join(missing)}, and the gap needs both "
            "(1 − P/B of IWM's holdings ÷ P/B of SPY's). I record a snapshot each day the source has one."
        )
    now = history[-1]
    shape = "discount" if now.gap >= 0 else "premium"
    lines = [
        f"<b>Valuation gap</b>: small caps trade at a <b>{abs(now.gap) * 100:.1f}% {shape}</b> to large caps "
        "on price-to-book.",
        f"IWM holdings P/B {number(now.pb_small)} vs SPY {number(now.pb_large)} ({day(now.as_of)}).",
    ]
    changes = []
    for days, label in LOOKBACKS:
        change = metrics.gap_change(history, days)
        if change is not None:
            changes.append(f"{change * 100:+.1f} pts over {label}")
    if changes:
        lines.append("Change: " + ", ".join(changes) + ".")
    if len(history) > 1:
        widest = max(history, key=lambda p: p.gap)
        narrowest = min(history, key=lambda p: p.gap)
        lines.append(
            f"Recorded since {day(history[0].as_of)}: widest {widest.gap * 100:.1f}% ({day(widest.as_of)}), "
            f"narrowest {narrowest.gap * 100:.1f}% ({day(narrowest.as_of)})."
        )
    lines += [
        "",
        "A wider gap means small caps are cheaper relative to large caps: value buyers see room to catch up, "
        "sceptics see weaker earnings priced in.",
        f"<i>P/B of the funds' holdings · {esc(request.services.market.source.name)}</i>",
    ]
    return Answer("\n".join(lines))


COMMANDS = (
    Command(
        "gap",
        "The small- vs large-cap price-to-book gap and how it moved",
        "/gap",
        ("/gap",),
        gap,
        market_only=True,
    ),
)


BUTTONS = ()
