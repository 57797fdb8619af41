"""The one-line alert grammar: what a user types after ``/alert``, read into a ``RuleSpec``.

    rut above 3000            spx below 4,500           rut cross 2000
    rut move 2%               rut high                  rut drawdown 10%
    ratio below 0.40          lead 5% 3m                lead -5% 3m
    gap above 45%             gap below 35%             gap shift 3
    pegap above 40%           pegap below 30%           pegap shift 3

then, in any order: ``close`` | ``live``, ``once``, ``band 0.5%``, ``for 30d`` (or ``for 2w``).

Case does not matter, index and ETF names are the aliases of ``market.instruments.resolve``, a level may be
written ``3000`` or ``3,000``, and ``%`` is optional wherever a percent is meant. The ``·`` separators of a
rule's canonical text are read as blanks, so ``parse_rule(spec.canonical) == spec``.

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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from alerts.observations import GAP_KEY, LEAD_PREFIX, PEGAP_KEY, RATIO_KEY, WINDOWS
from market.instruments import ALL, by_symbol, resolve


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

# Targets that are not an instrument.
RATIO = "RATIO"
GAP = "GAP"
PEGAP = "PEGAP"
LEAD = "LEAD"
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


def _names_hint() -> str:
    names = [i.short.lower() for i in ALL]
    return ", ".join([*names, "ratio", "gap", "pegap", "lead"])


@dataclass(frozen=True)
class RuleSpec:
    """One rule as the user meant it. ``cross`` is one spec stored as two rows (see
    ``parse_rules_for_storage``)."""

    target: str  # a Yahoo symbol ("^RUT", "IWM"), or RATIO, GAP, PEGAP, LEAD
    kind: str  # above | below | cross | move | high | drawdown | shift
    level: float | None  # None only for ``high``; units per the module docstring
    window: str | None = None  # LEAD only: one of WINDOWS
    mode: str = "live"  # close | live
    once: bool = False
    band: float = DEFAULT_BAND  # re-arm band as a fraction of |level| (of the high for ``high``)
    expires_after: timedelta | None = None

    @property
    def key(self) -> str:
        """The observation key this rule is judged on (see ``alerts.observations``)."""
        if self.target == RATIO:
            return RATIO_KEY
        if self.target == GAP:
            return GAP_KEY
        if self.target == PEGAP:
            return PEGAP_KEY
        if self.target == LEAD:
            return f"{LEAD_PREFIX}{self.window}"
        if self.kind in ("move", "drawdown"):
            return f"{self.target}:{self.kind}"
        return self.target

    @property
    def row_kinds(self) -> tuple[str, ...]:
        """The evaluation kinds of the rows stored for this rule: a cross is an above and a below."""
        if self.kind == "cross":
            return ("above", "below")
        if self.kind == "drawdown":
            return ("above",)
        return (self.kind,)

    @property
    def uses_band(self) -> bool:
        return self.kind not in ("move", "shift")

    @property
    def label(self) -> str:
        if self.target in (RATIO, GAP, PEGAP, LEAD):
            return self.target.lower()
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
        """The level as the canonical text writes it ("1,500", "0.4", "45%", "+5%", "10%"); "" for high."""
        level = self.level
        if self.kind == "high" or level is None:
            return ""
        if self.target == LEAD:
            return f"{_plain(level, signed=True)}%"
        if self.target == RATIO or (self.target in GAP_TARGETS and self.kind == "shift"):
            return _plain(level)
        if self.target in GAP_TARGETS or self.kind in ("move", "drawdown"):
            return f"{_plain(level)}%"
        return _plain(level, grouped=True)

    def _rule_text(self) -> str:
        level = self.level
        if self.kind == "high" or level is None:
            return f"{self.label} high"
        if self.target == LEAD:
            default = "above" if level >= 0 else "below"
            verb = "" if self.kind == default else f"{self.kind} "
            return f"lead {verb}{_plain(level, signed=True)}% {self.window}"
        if self.target == RATIO:
            return f"ratio {self.kind} {_plain(level)}"
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
    head, rest = tokens[0], tokens[1:]
    if head == "lead":
        spec, rest = _parse_lead(rest)
    elif head == "ratio":
        spec, rest = _parse_level_rule(RATIO, "ratio", rest, LEVEL_VERBS)
    elif head in ("gap", "pegap"):
        spec, rest = _parse_level_rule(GAP if head == "gap" else PEGAP, head, rest, GAP_VERBS)
    else:
        instrument = resolve(head)
        if instrument is None:
            raise RuleError(f'Unknown index or ETF "{head}": use one of {_names_hint()}.')
        if rest and (head, rest[0]) in _TWO_WORD_NAMES:
            rest = rest[1:]
        spec, rest = _parse_level_rule(instrument.symbol, head, rest, INSTRUMENT_VERBS)
    return _apply_modifiers(spec, rest)


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
    if not rest or not _looks_numeric(rest[0]):
        if rest and rest[0] not in _MODIFIER_WORDS:
            _number(rest[0], what="the level")  # raises the specific "not a number" message
        example = _LEVEL_EXAMPLES.get(verb) or {RATIO: "0.40", GAP: "45%", PEGAP: "30%"}.get(target, "3000")
        raise RuleError(f"Missing level after '{verb}': write for example '{name} {verb} {example}'.")
    raw, rest = rest[0], rest[1:]
    if verb in ("move", "drawdown"):
        level = _percent(raw, f"A {verb} level", PERCENT_RANGE)
        return RuleSpec(target, verb, level, mode="close" if verb == "move" else "live"), rest
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
    return RuleSpec(LEAD, verb, level, window=window, mode="close"), rest


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
        reason = (
            "it re-arms each trading day"
            if spec.kind == "move"
            else "its reference moves to the value of each alert"
        )
        raise RuleError(f"'band' does not apply to a {spec.kind} rule: {reason}.")
    if spec.target in GAP_TARGETS and mode == "live":
        raise RuleError(
            "The valuation gap is measured once a day from fund data, so it has no live value: drop 'live'."
        )
    return RuleSpec(
        target=spec.target,
        kind=spec.kind,
        level=spec.level,
        window=spec.window,
        mode=mode or spec.mode,
        once=once,
        band=band if band is not None else DEFAULT_BAND,
        expires_after=expires,
    )


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
    level = math.nan if spec.level is None else float(spec.level)
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
        for kind in spec.row_kinds
    ]
