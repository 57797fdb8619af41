"""The instruments capgap follows, and the names users may call them by.

This table is the one place to add an instrument: a row here (and a ``<SYMBOL without ^>_daily.csv``
history for offline use) makes it known to every source, command and rule. See the README's "Adding an
instrument".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Instrument:
    symbol: str  # Yahoo symbol, e.g. "^RUT"
    name: str  # what a reader calls it, e.g. "Russell 2000"
    short: str  # compact label for tables and alerts, e.g. "RUT"
    kind: Literal["index", "etf"]
    segment: Literal["small", "mid", "large"]
    aliases: tuple[str, ...] = ()
    # The index this fund holds (the symbol of a row here), or None: funds that follow the same index
    # confirm each other's moves (``market.plausibility``) and stand in for it as a price (``/target``).
    follows: str | None = None
    # Fetched on every refresh during regular hours (live rules, live notes); the others are fetched once
    # a session, after the close, so that more instruments do not multiply the requests of each refresh.
    intraday: bool = False
    # Its fund facts (expense ratio, size, the holdings' P/B and P/E) are fetched once a day: the funds of
    # /etf and of the valuation gap.
    fund_facts: bool = False

    @property
    def file_stem(self) -> str:
        """The CSV history file stem: the symbol without its caret (``RUT`` for ``^RUT``)."""
        return self.symbol.lstrip("^")

    @property
    def family(self) -> str:
        """The index an instrument stands for: its own symbol for an index, the followed one for a fund."""
        return self.follows or self.symbol


# fmt: off
RUT = Instrument("^RUT", "Russell 2000", "RUT", "index", "small", ("rut", "russell", "r2k", "small"), intraday=True)
GSPC = Instrument("^GSPC", "S&P 500", "SPX", "index", "large", ("spx", "sp500", "s&p", "large", "gspc"), intraday=True)
IWM = Instrument("IWM", "iShares Russell 2000 ETF", "IWM", "etf", "small", follows=RUT.symbol, intraday=True, fund_facts=True)
VTWO = Instrument("VTWO", "Vanguard Russell 2000 ETF", "VTWO", "etf", "small", follows=RUT.symbol, intraday=True, fund_facts=True)
SPY = Instrument("SPY", "SPDR S&P 500 ETF Trust", "SPY", "etf", "large", follows=GSPC.symbol, intraday=True, fund_facts=True)
VOO = Instrument("VOO", "Vanguard S&P 500 ETF", "VOO", "etf", "large", follows=GSPC.symbol, intraday=True, fund_facts=True)
IVV = Instrument("IVV", "iShares Core S&P 500 ETF", "IVV", "etf", "large", follows=GSPC.symbol, intraday=True, fund_facts=True)
SP600 = Instrument("^SP600", "S&P SmallCap 600", "SP600", "index", "small", ("sp600", "s&p600", "sml", "smallcap600"))
MID = Instrument("^MID", "S&P MidCap 400", "MID", "index", "mid", ("mid", "sp400", "s&p400", "midcap", "midcap400"))
IJR = Instrument("IJR", "iShares Core S&P Small-Cap ETF", "IJR", "etf", "small", follows=SP600.symbol)
IJH = Instrument("IJH", "iShares Core S&P Mid-Cap ETF", "IJH", "etf", "mid", follows=MID.symbol)
MDY = Instrument("MDY", "SPDR S&P MidCap 400 ETF", "MDY", "etf", "mid", follows=MID.symbol)
RSP = Instrument("RSP", "Invesco S&P 500 Equal Weight ETF", "RSP", "etf", "large", ("equal", "ew"))
IWB = Instrument("IWB", "iShares Russell 1000 ETF", "IWB", "etf", "large", ("r1k", "russell1000"))
IWN = Instrument("IWN", "iShares Russell 2000 Value ETF", "IWN", "etf", "small", ("r2kvalue",))
# fmt: on

ALL: tuple[Instrument, ...] = (RUT, GSPC, IWM, VTWO, SPY, VOO, IVV, SP600, MID, IJR, IJH, MDY, RSP, IWB, IWN)
SYMBOLS: tuple[str, ...] = tuple(i.symbol for i in ALL)
INDICES: tuple[Instrument, ...] = tuple(i for i in ALL if i.kind == "index")
ETFS: tuple[Instrument, ...] = tuple(i for i in ALL if i.kind == "etf")
# The story capgap tells first: /standing without arguments, the digest, and the date an answer is "as of"
# and judged fresh on.
HEADLINE: tuple[Instrument, Instrument] = (RUT, GSPC)
INTRADAY_SYMBOLS: tuple[str, ...] = tuple(i.symbol for i in ALL if i.intraday)
FUND_FACT_ETFS: tuple[Instrument, ...] = tuple(i for i in ETFS if i.fund_facts)

# The ETF whose price stands in for each index when a level is translated into a fund price: the first
# fund in the table that follows it.
PROXY_ETF: dict[str, str] = {}
for _fund in ETFS:
    if _fund.follows is not None:
        PROXY_ETF.setdefault(_fund.follows, _fund.symbol)
# The funds of /etf and of the valuation gap, by the index they hold.
SMALL_CAP_ETFS = tuple(e.symbol for e in FUND_FACT_ETFS if e.follows == RUT.symbol)
LARGE_CAP_ETFS = tuple(e.symbol for e in FUND_FACT_ETFS if e.follows == GSPC.symbol)

_BY_NAME: dict[str, Instrument] = {}
for _instrument in ALL:
    for _name in (_instrument.symbol, _instrument.file_stem, _instrument.short, *_instrument.aliases):
        _BY_NAME.setdefault(_name.lower(), _instrument)


def resolve(name: str) -> Instrument | None:
    """The instrument a user means by ``name`` (symbol, ticker or alias, any case), or None."""
    return _BY_NAME.get(name.strip().lower())


def by_symbol(symbol: str) -> Instrument:
    for instrument in ALL:
        if instrument.symbol == symbol:
            return instrument
    raise KeyError(symbol)


def benchmark(instrument: Instrument) -> Instrument:
    """What an instrument is compared with when a user names it alone: the S&P 500, as an index for an
    index and as SPY for a fund (so that prices compare with prices and dividends with dividends)."""
    return GSPC if instrument.kind == "index" else SPY
