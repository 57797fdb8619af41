"""The instruments capgap follows, and the names users may call them by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Instrument:
    symbol: str  # Yahoo symbol, e.g. "^RUT"
    name: str  # what a reader calls it, e.g. "Russell 2000"
    short: str  # compact label for tables and alerts, e.g. "RUT"
    kind: Literal["index", "etf"]
    segment: Literal["small", "large"]
    aliases: tuple[str, ...] = ()

    @property
    def file_stem(self) -> str:
        """The CSV history file stem: the symbol without its caret (``RUT`` for ``^RUT``)."""
        return self.symbol.lstrip("^")


RUT = Instrument("^RUT", "Russell 2000", "RUT", "index", "small", ("rut", "russell", "r2k", "small"))
GSPC = Instrument("^GSPC", "S&P 500", "SPX", "index", "large", ("spx", "sp500", "s&p", "large", "gspc"))
IWM = Instrument("IWM", "iShares Russell 2000 ETF", "IWM", "etf", "small")
VTWO = Instrument("VTWO", "Vanguard Russell 2000 ETF", "VTWO", "etf", "small")
SPY = Instrument("SPY", "SPDR S&P 500 ETF Trust", "SPY", "etf", "large")
VOO = Instrument("VOO", "Vanguard S&P 500 ETF", "VOO", "etf", "large")
IVV = Instrument("IVV", "iShares Core S&P 500 ETF", "IVV", "etf", "large")

INDICES: tuple[Instrument, ...] = (RUT, GSPC)
ETFS: tuple[Instrument, ...] = (IWM, VTWO, SPY, VOO, IVV)
ALL: tuple[Instrument, ...] = INDICES + ETFS
SYMBOLS: tuple[str, ...] = tuple(i.symbol for i in ALL)

# The ETF whose price stands in for each index when a level is translated into a fund price, and the
# pair whose price-to-book defines the valuation gap.
PROXY_ETF = {RUT.symbol: IWM.symbol, GSPC.symbol: SPY.symbol}
SMALL_CAP_ETFS = tuple(e.symbol for e in ETFS if e.segment == "small")
LARGE_CAP_ETFS = tuple(e.symbol for e in ETFS if e.segment == "large")

_BY_NAME: dict[str, Instrument] = {}
for _instrument in ALL:
    for _name in (_instrument.symbol, _instrument.file_stem, _instrument.short, *_instrument.aliases):
        _BY_NAME[_name.lower()] = _instrument


def resolve(name: str) -> Instrument | None:
    """The instrument a user means by ``name`` (symbol, ticker or alias, any case), or None."""
    return _BY_NAME.get(name.strip().lower())


def by_symbol(symbol: str) -> Instrument:
    for instrument in ALL:
        if instrument.symbol == symbol:
            return instrument
    raise KeyError(symbol)
