"""The one-line alert grammar: what a user types after ``/alert``, read into a ``RuleSpec``.

    rut above 3000            spx below 4,500           rut cross 2000
    rut move 2%               rut high                  rut drawdown 10%
    ratio below 0.40          lead 5% 3m                lead -5% 3m
    gap above 45%             gap below 35%             gap shift 3
    pegap above 40%           pegap below 30%           pegap shift 3
    rut cross ma200           rut above ma50            rut ma50 cross ma200
    ratio below ma200         ratio z below -1.5        ratio cross mean
    rut move 5% 1w            sp600/spx below 0.35      rut above ma200 and ratio below 0.40

then, in any order: ``close`` | ``live``, ``once``, ``band 0.5%``, ``for 30d`` (or ``for 2w``).

Case does not matter, index and ETF names are the aliases of ``market.instruments.resolve``, a level may be
written ``3000`` or ``3,000``, and ``%`` is optional wherever a percent is meant. The ``·`` separators of a
rule's canonical text are read as blanks, so ``parse_rule(spec.canonical) == spec``.

Moving averages are simple averages over sessions (``ma200``: the last 200 closes). ``rut cross ma200``
watches the price against its average, ``rut ma50 cross ma200`` the 50-session average against the
200-session one (the golden cross upward, the death cross downward); both are stored as a level of 1 on the
quotient (``alerts.observations``), so the band is a fraction of the average: ``band 1%`` re-arms once the
price has gone 1% past the average the other way. ``ratio z`` is the ratio's z-score against every day
since its history starts, ``ratio cross mean`` the ratio against that mean. ``rut move 5% 1w`` is a change
over a window (close to close), up or down, with the re-arm band of a level; ``rut move 2%`` alone is the
day's change, as before. A ratio of any two instruments is written ``a/b`` (``sp600/spx``); ``ratio`` alone
is RUT/SPX.

Up to ``MAX_CLAUSES`` conditions joined by ``and`` make one rule that fires when all of them become true
together, and re-arms when one stops being true (the combination is a yes/no value crossing; each clause
is an ``above`` or ``below`` without a band of its own). ``or`` is not offered: two rules say the same
thing, each with its own message. A combined rule is judged at the close unless every clause is a live
one, or ``live`` is given.

Units: index and ETF levels are prices; the ratio is a plain number (^RUT / ^GSPC); move, drawdown, lead and
the valuation gap are in percent (points), ``band`` is a fraction of the level (0.01 for ``band 1%``).
``gap`` is the gap on price-to-book, ``pegap`` the gap on price-to-earnings: one word each, as every other
target is, so ``pegap shift 3`` reads like ``gap shift 3`` and a modifier never changes what is measured.

When each rule is judged by default:
- levels on a price, the ratio and drawdown: ``live`` (every refresh in trading hours), because a price
  crossing a level is news the moment it happens;
- ``move`` and ``high``: ``close``, because a daily change and an all-time closing high are defined by the
  official close;
- ``lead``: ``close``, because a return difference over weeks or years barely moves within a day and its
  base is a daily close, so intraday judging would only add flip-flops around the level;
- the valuation gaps (``gap``, ``pegap``): ``close`` only; each is a daily snapshot of fund data with no
  live value, judged once per new reading (``alerts.engine.observe``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from alerts.observations import (
    AVERAGE_SESSIONS,
    GAP_KEY,
    LEAD_PREFIX,
    MAX_CLAUSES,
    PEGAP_KEY,
    TOTAL_RETURN,
    WINDOWS,
    Clause,
    combined_key,
    ratio_key,
)
from market.instruments import ALL, GSPC, INTRADAY_SYMBOLS, RUT, SYMBOLS, by_symbol, resolve


class RuleError(ValueError):
    """A rule the user typed cannot be understood; the message says why, in words for the user."""


MAX_RULE_CHARS = 200
DEFAULT_BAND = 0.01
BAND_RANGE = (0.001, 0.20)  # 0.1%..20%: narrower re-fires on noise, wider never re-arms
MAX_EXPIRY_DAYS = 730

PRICE_RANGE = (1.0, 1_000_000.0)
RATIO_RANGE = (0.01, 10.0)
PERCENT_RANGE = (0.1, 100.0)
GAP_RANGE = (-100.0, 100.0)
Z_RANGE = (-5.0, 5.0)
MIN_Z = 0.1  # a z level nearer 0 than this is the mean: "ratio cross mean" says it with a band that works
# A z-score's default band: 1% of -1.5 is 0.015, less than a quiet day's change of the z-score, so a 1% band
# would re-arm on noise; 5% of -1.5 is 0.075.
Z_BAND = 0.05

# Targets that are not an instrument.
RATIO = "RATIO"
GAP = "GAP"
PEGAP = "PEGAP"
LEAD = "LEAD"
ALL_OF = "ALL"  # a combined rule: every clause holds
# The valuation-gap targets and the multiple each compares.
GAP_TARGETS = {GAP: "price-to-book", PEGAP: "price-to-earnings"}

LEVEL_VERBS = ("above", "below", "cross")
INSTRUMENT_VERBS = (*LEVEL_VERBS, "move", "high", "drawdown")
GAP_VERBS = (*LEVEL_VERBS, "shift")
MODES = ("close", "live")

# Names users may type for the two indices as two words.
_TWO_WORD_NAMES = {("russell", "2000"), ("s&p", "500"), ("sp", "500")}

_NUMBER = re.compile(r"(?P<sign>[+-]?)(?P<digits>\d{1,3}(?:,\d{3})+|\d*)(?P<fraction>\.\d+)?")
_NOT_FINITE = {"nan", "inf", "infinity"}
_DURATION = re.compile(r"(\d+)([dw])")
_AVERAGE_WORD = re.compile(r"ma(\d+)")


def _names_hint(*, instruments_only: bool = False) -> str:
    names = [i.short.lower() for i in ALL]
    return ", ".join(names if instruments_only else [*names, "ratio", "gap", "pegap", "lead"])


@dataclass(frozen=True)
class RuleSpec:
    """One rule as the user meant it. ``cross`` is one spec stored as two rows (see
    ``parse_rules_for_storage``)."""

    target: str  # a Yahoo symbol ("^RUT", "IWM"), or RATIO, GAP, PEGAP, LEAD, ALL_OF
    kind: str  # above | below | cross | move | high | drawdown | shift
    level: float | None  # None only for ``high``; units per the module docstring
    window: str | None = None  # LEAD, and a move over a window: one of WINDOWS
    mode: str = "live"  # close | live
    once: bool = False
    band: float = DEFAULT_BAND  # re-arm band as a fraction of |level| (of the high for ``high``)
    expires_after: timedelta | None = None
    # What of the target is judged: "ma200" (the target over its average; level 1), "ma50/ma200" (one
    # average over the other; level 1), "z" and "mean" (a ratio's z-score; the ratio over its mean, level 1).
    measure: str | None = None
    pair: tuple[str, str] | None = None  # RATIO: the two symbols, when not ^RUT and ^GSPC
    clauses: tuple[RuleSpec, ...] = ()  # ALL_OF: the conditions, each an above or a below

    @property
    def key(self) -> str:
        """The observation key this rule is judged on (see ``alerts.observations``)."""
        if self.target == ALL_OF:
            # A clause's direction is that of its one stored row: a drawdown is "at or above" its level.
            return combined_key(
                Clause(c.key, c.row_kinds[0] == "above", float(c.level or 0.0)) for c in self.clauses
            )
        if self.target == RATIO:
            base = ratio_key(*(self.pair or (RUT.symbol, GSPC.symbol)))
            return base if self.measure is None else f"{base}:{self.measure}"
        if self.target == GAP:
            return GAP_KEY
        if self.target == PEGAP:
            return PEGAP_KEY
        if self.target == LEAD:
            return f"{LEAD_PREFIX}{self.window}" + (
                f":{TOTAL_RETURN}" if self.measure == TOTAL_RETURN else ""
            )
        if self.measure is not None:
            return f"{self.target}:{self.measure}"
        if self.kind == "move" and self.window is not None:
            return f"{self.target}:move:{self.window}"
        if self.kind in ("move", "drawdown"):
            return f"{self.target}:{self.kind}"
        return self.target

    @property
    def row_kinds(self) -> tuple[str, ...]:
        """The evaluation kinds of the rows stored for this rule: a cross is an above and a below, and so
        is a move over a window (up by the level, down by it)."""
        if self.kind == "cross" or self.windowed_move:
            return ("above", "below")
        if self.kind == "drawdown":
            return ("above",)
        return (self.kind,)

    @property
    def row_levels(self) -> tuple[float, ...]:
        """Each stored row's level, in the order of ``row_kinds`` (NaN for ``high``)."""
        level = math.nan if self.level is None else float(self.level)
        if self.windowed_move:
            return (level, -level)
        return tuple(level for _ in self.row_kinds)

    @property
    def windowed_move(self) -> bool:
        """A change over a window rather than the day's."""
        return self.kind == "move" and self.window is not None

    @property
    def uses_band(self) -> bool:
        if self.target == ALL_OF:
            return False  # it re-arms when a clause stops holding
        return self.windowed_move or self.kind not in ("move", "shift")

    @property
    def label(self) -> str:
        if self.target == RATIO and self.pair is not None:
            return "/".join(by_symbol(symbol).short for symbol in self.pair)
        if self.target in (RATIO, GAP, PEGAP, LEAD):
            return self.target.lower()
        if self.target == ALL_OF:
            return "all of"
        return by_symbol(self.target).short

    @property
    def canonical(self) -> str:
        """The rule in one normal form, e.g. ``RUT above 3,000 · live · band 1%``; it parses back to
        this spec."""
        parts = [self._rule_text(), self.mode]
        if self.once:
            parts.append("once")
        if self.uses_band:
            parts.append(f"band {_percent_of(self.band)}%")
        if self.expires_after is not None:
            parts.append(f"for {self.expires_after.days}d")
        return " · ".join(parts)

    @property
    def level_text(self) -> str:
        """The level as the canonical text writes it ("1,500", "0.4", "45%", "+5%", "10%", "ma200", "mean");
        "" for high and for a combined rule."""
        level = self.level
        if self.kind == "high" or level is None or self.target == ALL_OF:
            return ""
        if self.measure == "mean":
            return "mean"
        if self.measure is not None and self.measure not in ("z", TOTAL_RETURN):
            return self.measure.split("/")[-1]
        if self.measure == "z":
            return _plain(level)
        if self.target == LEAD:
            return f"{_plain(level, signed=True)}%"
        if self.target == RATIO or (self.target in GAP_TARGETS and self.kind == "shift"):
            return _plain(level)
        if self.target in GAP_TARGETS or self.kind in ("move", "drawdown"):
            return f"{_plain(level)}%"
        return _plain(level, grouped=True)

    def _rule_text(self) -> str:
        level = self.level
        if self.target == ALL_OF:
            return " and ".join(clause._rule_text() for clause in self.clauses)
        if self.kind == "high" or level is None:
            return f"{self.label} high"
        if self.measure is not None and "/" in self.measure:
            return f"{self.label} {self.measure.split('/')[0]} {self.kind} {self.level_text}"
        if self.measure == "z":
            return f"{self.label} z {self.kind} {_plain(level)}"
        if self.measure is not None and self.target != LEAD:
            return f"{self.label} {self.kind} {self.level_text}"
        if self.windowed_move:
            return f"{self.label} move {_plain(level)}% {self.window}"
        if self.target == LEAD:
            default = "above" if level >= 0 else "below"
            verb = "" if self.kind == default else f"{self.kind} "
            basis = " tr" if self.measure == TOTAL_RETURN else ""
            return f"lead {verb}{_plain(level, signed=True)}% {self.window}{basis}"
        if self.target == RATIO:
            return f"{self.label} {self.kind} {_plain(level)}"
        if self.target in GAP_TARGETS:
            unit = "" if self.kind == "shift" else "%"
            return f"{self.label} {self.kind} {_plain(level)}{unit}"
        if self.kind in ("move", "drawdown"):
            return f"{self.label} {self.kind} {_plain(level)}%"
        return f"{self.label} {self.kind} {_plain(level, grouped=True)}"

    def describe(self) -> str:
        """What the rule does, in plain words for a reply or a list of rules."""
        what = self._describe_condition()
        if self.target in GAP_TARGETS:
            when = (
                "judged once on each new reading of the two fund pairs, never on one their twins contradict"
            )
        elif self.mode == "close":
            when = "judged at the official close"
        else:
            when = "judged on every refresh during trading hours"
        if self.once:
            repeat = "once, then deleted"
        elif self.target == ALL_OF:
            repeat = "again after one of them stops holding and they all hold again"
        elif self.windowed_move:
            repeat = f"again after the change comes back {_percent_of(self.band)}% inside the level"
        elif self.measure is not None and self.measure not in ("z", TOTAL_RETURN):
            past = "mean" if self.measure == "mean" else "average"
            repeat = f"again after it moves back {_percent_of(self.band)}% past the {past}"
        elif self.kind == "move":
            repeat = "at most once a trading day"
        elif self.kind == "shift":
            repeat = "again each time it moves that far from the last alert"
        elif self.kind == "high":
            repeat = f"again after a pull-back of {_percent_of(self.band)}% from the high"
        else:
            repeat = f"again after it moves back {_percent_of(self.band)}% past the level"
        text = f"Tells you {what}; {when}; {repeat}"
        if self.expires_after is not None:
            text += f"; expires after {self.expires_after.days} days"
        return text + "."

    def _describe_condition(self) -> str:
        level = self.level if self.level is not None else math.nan
        if self.target == ALL_OF:
            parts = [clause._describe_condition().removeprefix("when ") for clause in self.clauses]
            return "when all of these hold together: " + "; and ".join(parts)
        if self.target == LEAD and self.measure == TOTAL_RETURN:
            return self._describe_total_return_lead(level)
        if self.measure is not None or self.windowed_move or (self.target == RATIO and self.pair):
            return self._describe_measure(level)
        if self.target == LEAD:
            window = _WINDOW_WORDS[self.window or ""]
            if self.kind == "cross":
                return (
                    f"when the Russell 2000's lead over the S&P 500 over {window} crosses "
                    f"{_plain(level, signed=True)} points, either way"
                )
            direction = "rises to" if self.kind == "above" else "falls to"
            return (
                f"when the Russell 2000's lead over the S&P 500 over {window} (its return minus the "
                f"S&P 500's) {direction} {_plain(level, signed=True)} points"
                f" or {'more' if self.kind == 'above' else 'less'}"
            )
        if self.target == RATIO:
            name, shown = "Russell 2000 / S&P 500 price ratio", _plain(level)
        elif self.target in GAP_TARGETS:
            multiple = GAP_TARGETS[self.target]
            if self.kind == "shift":
                return (
                    f"when the valuation gap on {multiple} moves {_plain(level)} points or more from its "
                    "value when the rule was set or last alerted"
                )
            name, shown = f"valuation gap (the small-cap discount on {multiple})", f"{_plain(level)}%"
        else:
            name = by_symbol(self.target).name
            if self.kind == "move":
                return f"when the {name} moves {_plain(level)}% or more in a day, up or down"
            if self.kind == "high":
                return f"when the {name} reaches a new all-time closing high"
            if self.kind == "drawdown":
                return f"when the {name} is {_plain(level)}% or more below its all-time closing high"
            shown = _plain(level, grouped=True)
        if self.kind == "above":
            return f"when the {name} reaches {shown} or more"
        if self.kind == "below":
            return f"when the {name} falls to {shown} or less"
        return f"when the {name} crosses {shown}, either way"

    def _describe_total_return_lead(self, level: float) -> str:
        window = _WINDOW_WORDS[self.window or ""]
        what = (
            f"IWM's total return minus SPY's over {window} (dividends included, from the funds' adjusted "
            "closes)"
        )
        if self.kind == "cross":
            return f"when {what} crosses {_plain(level, signed=True)} points, either way"
        direction = "rises to" if self.kind == "above" else "falls to"
        more = "more" if self.kind == "above" else "less"
        return f"when {what} {direction} {_plain(level, signed=True)} points or {more}"

    def _describe_measure(self, level: float) -> str:
        """The condition of a moving-average, z, mean, window-move or pair-ratio rule."""
        if self.target == RATIO:
            small, large = self.pair or (RUT.symbol, GSPC.symbol)
            name = f"{by_symbol(small).name} / {by_symbol(large).name} price ratio"
        else:
            name = by_symbol(self.target).name
        if self.windowed_move:
            return (
                f"when the {name} is up or down {_plain(level)}% or more over "
                f"{_WINDOW_WORDS[self.window or '']}, close to close"
            )
        verbs = {"above": "rises to or above", "below": "falls to or below", "cross": "crosses"}
        verb = verbs[self.kind]
        either = ", either way" if self.kind == "cross" else ""
        if self.measure == "z":
            towards = {"above": "rises to", "below": "falls to", "cross": "crosses"}[self.kind]
            more = {"above": " or more", "below": " or less"}.get(self.kind, "")
            return (
                f"when the z-score of the {name} against its whole history {towards} {_plain(level)}"
                f"{more}{either}"
            )
        if self.measure == "mean":
            return f"when the {name} {verb} its mean over its whole history{either}"
        if self.measure is not None:
            days = [f"{name[2:]}-day average" for name in self.measure.split("/")]
            if len(days) == 2:
                cross = {"above": " (a golden cross)", "below": " (a death cross)"}.get(self.kind, "")
                if self.kind == "cross":
                    cross = " (golden cross upward, death cross downward)"
                return f"when the {name}'s {days[0]} {verb} its {days[1]}{either}{cross}"
            return f"when the {name} {verb} its {days[0]}{either}"
        verb = {"above": "reaches", "below": "falls to", "cross": "crosses"}[self.kind]
        more = {"above": " or more", "below": " or less"}.get(self.kind, "")
        return f"when the {name} {verb} {_plain(level)}{more}{either}"


_WINDOW_WORDS = {
    "1w": "1 week",
    "1m": "1 month",
    "3m": "3 months",
    "6m": "6 months",
    "ytd": "the year to date",
    "1y": "1 year",
    "3y": "3 years",
    "5y": "5 years",
    "10y": "10 years",
}


def _plain(value: float, *, grouped: bool = False, signed: bool = False) -> str:
    """A number as a user would write it: the shortest text that reads back as the same float (so a
    canonical rule parses back exactly), without a trailing ".0"."""
    text = repr(float(value))
    if text.endswith(".0"):
        text = text[:-2]
    sign = "-" if text.startswith("-") else ("+" if signed else "")
    digits = text.lstrip("-")
    if grouped:
        whole, dot, fraction = digits.partition(".")
        digits = f"{int(whole):,}{dot}{fraction}"
    return "0" if digits == "0" else sign + digits


def _percent_of(fraction: float) -> str:
    """A band as a percent; rounded, because 0.003 × 100 is 0.30000000000000004 in floating point."""
    return _plain(round(fraction * 100, 8))


# --- parsing -------------------------------------------------------------------------------------------


def parse_rule(text: str) -> RuleSpec:
    """Read one rule; raise ``RuleError`` with a message for the user when it cannot be read."""
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(f"That rule is {len(text)} characters long; keep it under {MAX_RULE_CHARS}.")
    tokens = _tokens(text)
    if not tokens:
        raise RuleError("Empty rule: write for example 'rut above 3000' or 'gap shift 3'.")
    if "and" in tokens:
        return _parse_combined(tokens)
    spec, rest = _parse_condition(tokens)
    return _apply_modifiers(spec, rest)


def _parse_condition(tokens: list[str]) -> tuple[RuleSpec, list[str]]:
    """One condition from the start of ``tokens``, and the words after it."""
    head, rest = tokens[0], tokens[1:]
    if head == "lead":
        return _parse_lead(rest)
    if head == "ratio":
        pair = None
        if rest and "/" in rest[0]:
            pair, rest = _pair(rest[0]), rest[1:]
        return _parse_ratio(pair, "ratio", rest)
    if head in ("gap", "pegap"):
        return _parse_level_rule(GAP if head == "gap" else PEGAP, head, rest, GAP_VERBS)
    if "/" in head:
        return _parse_ratio(_pair(head), head, rest)
    instrument = resolve(head)
    if instrument is None:
        raise RuleError(f'Unknown index or ETF "{head}": use one of {_names_hint()}.')
    if rest and (head, rest[0]) in _TWO_WORD_NAMES:
        rest = rest[1:]
    if rest and _AVERAGE_WORD.fullmatch(rest[0]):
        return _parse_averages(instrument.symbol, None, head, rest)
    return _parse_level_rule(instrument.symbol, head, rest, INSTRUMENT_VERBS)


def _pair(word: str) -> tuple[str, str] | None:
    """The two symbols of ``a/b`` (None for RUT/SPX, which is plain ``ratio``)."""
    names = word.split("/")
    found = [resolve(name) for name in names]
    if len(names) != 2 or not all(found):
        unknown = next((n for n, f in zip(names, found, strict=False) if f is None), word)
        raise RuleError(
            f'"{word}" is not a ratio of two instruments: write two names with a slash, like sp600/spx '
            f'("{unknown}" is not one of {_names_hint(instruments_only=True)}).'
        )
    small, large = (instrument.symbol for instrument in found if instrument)
    if small == large:
        raise RuleError(f'"{word}" divides an instrument by itself: name two different ones.')
    return None if (small, large) == (RUT.symbol, GSPC.symbol) else (small, large)


def _parse_ratio(pair: tuple[str, str] | None, name: str, rest: list[str]) -> tuple[RuleSpec, list[str]]:
    if rest and _AVERAGE_WORD.fullmatch(rest[0]):
        return _parse_averages(RATIO, pair, name, rest)
    if rest and rest[0] == "z":
        rest = rest[1:]
        if not rest or rest[0] not in LEVEL_VERBS:
            raise RuleError(f"Add above, below or cross after 'z': write for example '{name} z below -1.5'.")
        verb, rest = rest[0], rest[1:]
        if not rest or not _looks_numeric(rest[0]):
            raise RuleError(f"Missing z-score after '{verb}': write for example '{name} z {verb} -1.5'.")
        level = _number(rest[0], what="the z-score")
        if not Z_RANGE[0] <= level <= Z_RANGE[1]:
            raise RuleError(f"A z-score level must be between -5 and 5, got {rest[0]}.")
        if abs(level) < MIN_Z:
            raise RuleError(f"A z-score of {rest[0]} is the mean itself: write '{name} {verb} mean'.")
        return RuleSpec(RATIO, verb, level, mode="close", band=Z_BAND, measure="z", pair=pair), rest[1:]
    spec, rest = _parse_level_rule(RATIO, name, rest, LEVEL_VERBS)
    return replace(spec, pair=pair), rest


def _parse_averages(
    target: str, pair: tuple[str, str] | None, name: str, rest: list[str]
) -> tuple[RuleSpec, list[str]]:
    """``<name> ma50 cross ma200``: one moving average against another."""
    fast, rest = rest[0], rest[1:]
    if not rest or rest[0] not in LEVEL_VERBS:
        raise RuleError(
            f"Compare {fast} with another average: write for example '{name} {fast} cross ma200'."
        )
    verb, rest = rest[0], rest[1:]
    if not rest or not _AVERAGE_WORD.fullmatch(rest[0]):
        raise RuleError(
            f"An average is compared with another average: write for example '{name} {fast} {verb} ma200'."
        )
    slow = rest[0]
    _check_average(fast)
    _check_average(slow)
    if int(fast[2:]) == int(slow[2:]):
        raise RuleError(f"{fast} and {slow} are the same average: compare two different lengths.")
    measure = f"ma{int(fast[2:])}/ma{int(slow[2:])}"  # one spelling per average: ma050 is ma50
    return RuleSpec(target, verb, 1.0, mode="close", measure=measure, pair=pair), rest[1:]


def _check_average(word: str) -> None:
    sessions = int(word[2:])
    low, high = AVERAGE_SESSIONS
    if not low <= sessions <= high:
        raise RuleError(f"A moving average must be over {low} to {high} sessions, got {word}.")


def _tokens(text: str) -> list[str]:
    words = text.replace("·", " ").lower().split()
    # "2 %" is "2%": a percent sign set apart still belongs to the number before it.
    tokens: list[str] = []
    for word in words:
        if word == "%" and tokens:
            tokens[-1] += "%"
        else:
            tokens.append(word)
    return tokens


def _parse_level_rule(
    target: str, name: str, rest: list[str], verbs: tuple[str, ...]
) -> tuple[RuleSpec, list[str]]:
    if not rest:
        raise RuleError(f"What should {name} do? Add one of: {', '.join(verbs)} (e.g. '{name} above 3000').")
    verb, rest = rest[0], rest[1:]
    if verb not in verbs:
        raise RuleError(f'"{verb}" is not a rule for {name}: use one of {", ".join(verbs)}.')
    if verb == "high":
        if rest and _looks_numeric(rest[0]):
            raise RuleError(f"A high rule takes no level: write '{name} high'.")
        return RuleSpec(target, "high", None, mode="close"), rest
    if (
        rest
        and verb in LEVEL_VERBS
        and target not in GAP_TARGETS
        and (_AVERAGE_WORD.fullmatch(rest[0]) or rest[0] == "mean")
    ):
        if rest[0] == "mean":
            if target != RATIO:
                raise RuleError(f"'mean' is a ratio's long-run mean: write for example 'ratio {verb} mean'.")
        else:
            _check_average(rest[0])
        measure = rest[0] if rest[0] == "mean" else f"ma{int(rest[0][2:])}"  # one spelling: ma050 is ma50
        return RuleSpec(target, verb, 1.0, mode="close", measure=measure), rest[1:]
    if not rest or not _looks_numeric(rest[0]):
        if rest and rest[0] not in _MODIFIER_WORDS:
            _number(rest[0], what="the level")  # raises the specific "not a number" message
        example = _LEVEL_EXAMPLES.get(verb) or {RATIO: "0.40", GAP: "45%", PEGAP: "30%"}.get(target, "3000")
        raise RuleError(f"Missing level after '{verb}': write for example '{name} {verb} {example}'.")
    raw, rest = rest[0], rest[1:]
    if verb == "move":
        level = _percent(raw, "A move level", PERCENT_RANGE)
        window = None
        if rest and (rest[0] in WINDOWS or re.fullmatch(r"\d+[a-z]+", rest[0])):
            if rest[0] not in WINDOWS:
                raise RuleError(f'Unknown window "{rest[0]}": use one of {", ".join(WINDOWS)}.')
            window, rest = rest[0], rest[1:]
        return RuleSpec(target, verb, level, window=window, mode="close"), rest
    if verb == "drawdown":
        return RuleSpec(target, verb, _percent(raw, "A drawdown level", PERCENT_RANGE), mode="live"), rest
    if target in GAP_TARGETS:
        if verb == "shift":
            level = _percent(raw, "A gap shift", PERCENT_RANGE, unit="points")
        else:
            level = _percent(raw, "A valuation-gap level", GAP_RANGE)
        return RuleSpec(target, verb, level, mode="close"), rest
    if target == RATIO:
        level = _plain_level(raw, "The ratio", RATIO_RANGE, hint="a plain number like 0.40, not a percent")
        return RuleSpec(target, verb, level, mode="live"), rest
    level = _plain_level(raw, f"The {by_symbol(target).short} level", PRICE_RANGE, hint="a price in points")
    return RuleSpec(target, verb, level, mode="live"), rest


def _parse_lead(rest: list[str]) -> tuple[RuleSpec, list[str]]:
    verb: str | None = None
    if rest and rest[0] in LEVEL_VERBS:
        verb, rest = rest[0], rest[1:]
    level: float | None = None
    window: str | None = None
    # The level and the window may come in either order ("lead 5% 3m", "lead 3m 5%").
    for _ in range(2):
        if not rest:
            break
        word = rest[0]
        if word in WINDOWS and window is None:
            window = word
        elif _looks_numeric(word) and level is None:
            level = _lead_level(word)
        else:
            break
        rest = rest[1:]
    basis = None
    if rest and rest[0] in (TOTAL_RETURN, "total"):
        basis, rest = TOTAL_RETURN, rest[1:]
    if level is None:
        if rest and rest[0] not in _MODIFIER_WORDS and not re.fullmatch(r"\d+[a-z]+", rest[0]):
            _number(rest[0], what="the lead")
        raise RuleError(
            "Missing level for the lead: write for example 'lead 5% 3m' (or 'lead -5% 3m' for lagging)."
        )
    if window is None:
        if rest and re.fullmatch(r"\d+[a-z]+|ytd", rest[0]):
            raise RuleError(f'Unknown window "{rest[0]}": use one of {", ".join(WINDOWS)}.')
        raise RuleError(f"Missing window for the lead: add one of {', '.join(WINDOWS)} (e.g. 'lead 5% 3m').")
    if verb is None:
        verb = "above" if level >= 0 else "below"
    return RuleSpec(LEAD, verb, level, window=window, mode="close", measure=basis), rest


def _lead_level(word: str) -> float:
    value = _number(word, what="the lead")
    if not PERCENT_RANGE[0] <= abs(value) <= PERCENT_RANGE[1]:
        raise RuleError(
            f"A lead must be between {_plain(PERCENT_RANGE[0])} and {_plain(PERCENT_RANGE[1])} points "
            f"either way (e.g. 5% or -5%), got {word}."
        )
    return value


_MODIFIER_WORDS = {"close", "live", "once", "band", "for"}
_LEVEL_EXAMPLES = {"move": "2%", "drawdown": "10%", "shift": "3"}


def _apply_modifiers(spec: RuleSpec, words: list[str]) -> RuleSpec:
    mode: str | None = None
    once = False
    band: float | None = None
    expires: timedelta | None = None
    seen: set[str] = set()
    i = 0
    while i < len(words):
        word = words[i]
        if word in seen:
            raise RuleError(f'"{word}" is given twice.')
        seen.add(word)
        if word in MODES:
            if mode is not None:
                raise RuleError("Choose either 'close' or 'live', not both.")
            mode = word
        elif word == "once":
            once = True
        elif word == "band":
            if i + 1 >= len(words):
                raise RuleError("Missing size after 'band': write for example 'band 0.5%'.")
            i += 1
            band = _percent(words[i], "The band", (BAND_RANGE[0] * 100, BAND_RANGE[1] * 100)) / 100.0
        elif word == "for":
            if i + 1 >= len(words):
                raise RuleError("Missing duration after 'for': write for example 'for 30d' or 'for 2w'.")
            i += 1
            expires = _duration(words[i])
        elif _looks_numeric(word):
            raise RuleError(f'Unexpected number "{word}": the level comes right after the rule word.')
        else:
            raise RuleError(
                f'Unknown modifier "{word}": use close, live, once, band 1% or for 30d after the rule.'
            )
        i += 1
    if band is not None and not spec.uses_band:
        if spec.target == ALL_OF:
            raise RuleError(
                "'band' does not apply to a combined rule: it re-arms when a condition stops holding."
            )
        reason = (
            "it re-arms each trading day"
            if spec.kind == "move"
            else "its reference moves to the value of each alert"
        )
        raise RuleError(f"'band' does not apply to a {spec.kind} rule: {reason}.")
    daily = [by_symbol(symbol).short for symbol in _symbols(spec) if symbol not in INTRADAY_SYMBOLS]
    if daily and mode == "live":
        raise RuleError(
            f"{', '.join(daily)} {'is' if len(daily) == 1 else 'are'} read once a day, after the close "
            "(live prices are asked for the Russell 2000, the S&P 500 and their funds only): drop 'live'."
        )
    if daily and spec.mode == "live":
        spec = replace(spec, mode="close")
    total_return = [c for c in (spec, *spec.clauses) if c.target == LEAD and c.measure == TOTAL_RETURN]
    if total_return and mode == "live":
        raise RuleError(
            "A total-return lead is measured on the funds' adjusted closes, which come with each close: "
            "drop 'live'."
        )
    if spec.target in GAP_TARGETS and mode == "live":
        raise RuleError(
            "The valuation gap is measured once a day from fund data, so it has no live value: drop 'live'."
        )
    return replace(
        spec,
        mode=mode or spec.mode,
        once=once,
        band=band if band is not None else spec.band,
        expires_after=expires,
    )


def _parse_combined(tokens: list[str]) -> RuleSpec:
    """``<condition> and <condition> [and <condition>] [modifiers]``."""
    groups: list[list[str]] = [[]]
    for token in tokens:
        if token == "and":
            groups.append([])
        else:
            groups[-1].append(token)
    if any(not group for group in groups):
        raise RuleError("Put a condition on each side of 'and': e.g. 'rut above ma200 and ratio below 0.40'.")
    if len(groups) > MAX_CLAUSES:
        raise RuleError(f"A rule combines at most {MAX_CLAUSES} conditions; this one has {len(groups)}.")
    clauses: list[RuleSpec] = []
    rest: list[str] = []
    for number, group in enumerate(groups, start=1):
        clause, rest = _parse_condition(group)
        if rest and number < len(groups):
            raise RuleError(
                f'"{rest[0]}" in condition {number}: close, live, once, band and for go after the last condition.'
            )
        _check_clause(clause, number)
        clauses.append(clause)
    if len({clause.key for clause in clauses}) < len(clauses):
        raise RuleError("Two of the conditions watch the same value: combine different ones.")
    mode = "close" if any(clause.mode == "close" for clause in clauses) else "live"
    # In one order, whatever order they were typed in: the same combination is the same rule (and key).
    # Instruments first, then ratios and leads, each by key.
    ordered = tuple(sorted(clauses, key=lambda clause: (clause.target not in SYMBOLS, clause.key)))
    return _apply_modifiers(RuleSpec(ALL_OF, "above", 1.0, mode=mode, clauses=ordered), rest)


def _check_clause(clause: RuleSpec, number: int) -> None:
    if clause.target in GAP_TARGETS:
        raise RuleError(
            "The valuation gap cannot be combined: it is read once a day from fund data, not at each close. "
            "Set it as a rule of its own."
        )
    if clause.kind == "cross":
        raise RuleError(
            f"Condition {number} says 'cross': in a combined rule each condition is 'above' or 'below', and "
            "the rule fires when all of them become true together."
        )
    if clause.kind in ("move", "high", "shift"):
        raise RuleError(
            f"A {clause.kind} cannot be combined (condition {number}): combine levels, averages, the ratio, "
            "z-scores, leads and drawdowns."
        )


def _symbols(spec: RuleSpec) -> list[str]:
    """The instruments a rule watches."""
    if spec.target == ALL_OF:
        return [symbol for clause in spec.clauses for symbol in _symbols(clause)]
    if spec.target == RATIO:
        return list(spec.pair or (RUT.symbol, GSPC.symbol))
    return [spec.target] if spec.target in SYMBOLS else []


def _duration(word: str) -> timedelta:
    match = _DURATION.fullmatch(word)
    if match is None:
        raise RuleError(f'"{word}" is not a duration: write days or weeks, e.g. for 30d or for 2w.')
    days = int(match[1]) * (7 if match[2] == "w" else 1)
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise RuleError(f"An expiry must be between 1 and {MAX_EXPIRY_DAYS} days, got {word}.")
    return timedelta(days=days)


def _looks_numeric(word: str) -> bool:
    bare = word.rstrip("%").lstrip("+-")
    return bool(bare) and (bare in _NOT_FINITE or bool(re.fullmatch(r"[\d.,]+", bare)))


def _number(word: str, *, what: str) -> float:
    """A number as typed, with an optional sign, thousands separators and percent sign."""
    bare = word.rstrip("%")
    if bare.lstrip("+-") in _NOT_FINITE:
        raise RuleError(f'"{word}" is not a finite number: {what} must be an ordinary number.')
    match = _NUMBER.fullmatch(bare)
    if match is None or not (match["digits"] or match["fraction"]) or bare.count("%"):
        raise RuleError(f'"{word}" is not a number (write 3000 or 3,000).')
    value = float(bare.replace(",", ""))
    if not math.isfinite(value):
        raise RuleError(f'"{word}" is not a finite number: {what} must be an ordinary number.')
    return value


def _percent(word: str, what: str, bounds: tuple[float, float], *, unit: str = "%") -> float:
    value = _number(word, what=_lower_first(what))
    low, high = bounds
    if not low <= value <= high:
        span = (
            f"{_plain(low)}% and {_plain(high)}%"
            if unit == "%"
            else f"{_plain(low)} and {_plain(high)} {unit}"
        )
        raise RuleError(f"{what} must be between {span}, got {word}.")
    return value


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _plain_level(word: str, what: str, bounds: tuple[float, float], *, hint: str) -> float:
    if word.endswith("%"):
        raise RuleError(f"{what} is {hint}: drop the %.")
    value = _number(word, what=_lower_first(what))
    low, high = bounds
    if not low <= value <= high:
        raise RuleError(
            f"{what} must be between {_plain(low, grouped=True)} and {_plain(high, grouped=True)}, "
            f"got {word}."
        )
    return value


# --- storage -------------------------------------------------------------------------------------------


def parse_rules_for_storage(spec: RuleSpec) -> list[dict[str, Any]]:
    """The rows to store for ``spec``: one, or two for ``cross`` (an above and a below row that the store
    gives one shared group id, so they are listed and deleted as one).

    Each row holds what evaluation needs from the spec (``key``, ``kind``, ``level``, ``band``, ``mode``,
    ``once``), the ``expires_after`` the store turns into ``expires_at`` at creation, and the canonical
    ``text`` to show and to re-parse. The state columns come from ``alerts.evaluate.initial_state``.
    """
    return [
        {
            "key": spec.key,
            "kind": kind,
            "level": level,
            "band": spec.band,
            "mode": spec.mode,
            "once": spec.once,
            "expires_after": spec.expires_after,
            "text": spec.canonical,
        }
        for kind, level in zip(spec.row_kinds, spec.row_levels, strict=True)
    ]
