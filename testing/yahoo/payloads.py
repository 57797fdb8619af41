"""What the replay answers with: Yahoo-shaped chart, quoteSummary, v7 quote, timeseries, cookie and
crumb bodies, built from the daily CSV history and the fund facts, and the rules they keep (see
``testing.yahoo``)."""

from __future__ import annotations

import csv
import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

NEW_YORK: Final = ZoneInfo("America/New_York")
SESSION_OPEN: Final = time(9, 30)
SESSION_CLOSE: Final = time(16, 0)
# Rule 1: Yahoo's 100 years, counted in the strictest way (see ``testing.yahoo``).
LONGEST_DAILY_SPAN: Final = 100 * 365 * 86400


# What Yahoo calls each instrument and where it lists it; only used to fill realistic metadata.
_LISTINGS: Final[Mapping[str, tuple[str, str, str]]] = {
    # symbol: (name, exchange code, instrument type)
    "^RUT": ("Russell 2000", "WCB", "INDEX"),
    "^GSPC": ("S&P 500", "SNP", "INDEX"),
    "IWM": ("iShares Russell 2000 ETF", "PCX", "ETF"),
    "VTWO": ("Vanguard Russell 2000 Index Fund ETF Shares", "NGM", "ETF"),
    "SPY": ("SPDR S&P 500 ETF Trust", "PCX", "ETF"),
    "VOO": ("Vanguard S&P 500 ETF", "PCX", "ETF"),
    "IVV": ("iShares Core S&P 500 ETF", "PCX", "ETF"),
    "^SP600": ("S&P Small Cap 600", "SNP", "INDEX"),
    "^MID": ("S&P 400", "SNP", "INDEX"),
    "IJR": ("iShares Core S&P Small-Cap ETF", "PCX", "ETF"),
    "IJH": ("iShares Core S&P Mid-Cap ETF", "PCX", "ETF"),
    "MDY": ("SPDR S&P MIDCAP 400 ETF Trust", "PCX", "ETF"),
    "RSP": ("Invesco S&P 500 Equal Weight ETF", "PCX", "ETF"),
    "IWB": ("iShares Russell 1000 ETF", "PCX", "ETF"),
    "IWN": ("iShares Russell 2000 Value ETF", "PCX", "ETF"),
}
_FUND_PROFILES: Final[Mapping[str, tuple[str, str]]] = {
    # symbol: (family, Morningstar category)
    "IWM": ("iShares", "Small Blend"),
    "VTWO": ("Vanguard", "Small Blend"),
    "SPY": ("SPDR State Street Global Advisors", "Large Blend"),
    "VOO": ("Vanguard", "Large Blend"),
    "IVV": ("iShares", "Large Blend"),
}
# Yahoo reports splits as chart events even though its Close is already split-adjusted.
_SPLITS: Final[Mapping[str, tuple[tuple[date, int, int], ...]]] = {"VTWO": ((date(2021, 4, 20), 2, 1),)}

_VALID_RANGES: Final = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
_RANGE_OFFSETS: Final[Mapping[str, pd.DateOffset]] = {
    "1mo": pd.DateOffset(months=1),
    "3mo": pd.DateOffset(months=3),
    "6mo": pd.DateOffset(months=6),
    "1y": pd.DateOffset(years=1),
    "2y": pd.DateOffset(years=2),
    "5y": pd.DateOffset(years=5),
    "10y": pd.DateOffset(years=10),
}
_INFO_MODULES: Final = frozenset(
    {"financialData", "quoteType", "defaultKeyStatistics", "assetProfile", "summaryDetail"}
)
_FUND_MODULES: Final = frozenset({"quoteType", "summaryProfile", "topHoldings", "fundProfile"})


@dataclass
class _FundFacts:
    expense_ratio: float | None  # fraction, served as fundProfile annualReportExpenseRatio
    net_expense_ratio: float | None  # percent, served as v7 quote netExpenseRatio
    total_assets: float | None  # USD, served as summaryDetail/defaultKeyStatistics totalAssets
    book_to_price: float | None = None  # served as topHoldings.equityHoldings.priceToBook
    # served as topHoldings.equityHoldings.priceToEarnings
    earnings_to_price: float | None = None


@dataclass(frozen=True)
class _Live:
    price: float
    time: datetime


def _symbols_of(path: str, query: Mapping[str, str]) -> tuple[str, ...]:
    parts = path.rstrip("/").split("/")
    for prefix in (("v8", "finance", "chart"), ("v10", "finance", "quoteSummary")):
        if tuple(parts[1:4]) == prefix and len(parts) == 5:
            return (parts[4].upper(),)
    if path.startswith("/ws/fundamentals-timeseries/") and parts:
        return (parts[-1].upper(),)
    if "symbols" in query:
        return tuple(s.strip().upper() for s in query["symbols"].split(",") if s.strip())
    return ()


def _listing(symbol: str) -> tuple[str, str, str]:
    return _LISTINGS.get(symbol, (symbol, "PCX", "INDEX" if symbol.startswith("^") else "ETF"))


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _exchange_time(day: date, at: time) -> datetime:
    return datetime.combine(day, at, NEW_YORK)


@functools.lru_cache(maxsize=32)
def _load_history(path: Path) -> pd.DataFrame | None:
    """``<stem>_daily.csv`` as Yahoo's daily bars, read once per process; None if not a price history.

    Besides the file's columns, each bar gets ``bar_time`` (Yahoo's timestamp: the session's opening
    minute) and ``close_time`` (16:00 New York), both in epoch seconds.
    """
    frame = pd.read_csv(path, parse_dates=["date"])
    if "close" not in frame.columns:
        return None
    frame = frame.set_index("date").sort_index()
    days = pd.DatetimeIndex(frame.index)
    # Yahoo stamps a daily bar with the session's opening time in exchange time.
    opens = (days + pd.Timedelta(hours=9, minutes=30)).tz_localize(NEW_YORK).tz_convert(UTC)
    closes = (days + pd.Timedelta(hours=16)).tz_localize(NEW_YORK).tz_convert(UTC)
    frame["bar_time"] = (opens - pd.Timestamp(0, tz=UTC)) // pd.Timedelta(seconds=1)
    frame["close_time"] = (closes - pd.Timestamp(0, tz=UTC)) // pd.Timedelta(seconds=1)
    return frame


def _load_funds(path: Path) -> dict[str, _FundFacts]:
    facts: dict[str, _FundFacts] = {}
    if not path.exists():
        return facts
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            ratio = float(row["expense_ratio"]) if row["expense_ratio"] else None
            assets = float(row["total_assets"]) if row["total_assets"] else None
            facts[row["symbol"].upper()] = _FundFacts(
                expense_ratio=ratio,
                net_expense_ratio=None if ratio is None else round(ratio * 100, 6),
                total_assets=assets,
            )
    return facts


def _json_list(values: pd.Series) -> list[float | None]:
    """A price column as JSON values: NaN becomes null, as Yahoo sends it."""
    return [None if v != v else v for v in values.to_numpy(dtype=float).tolist()]  # v != v: NaN


def _json_volumes(values: pd.Series) -> list[int | None]:
    return [None if v != v else int(v) for v in values.to_numpy(dtype=float).tolist()]


class Payloads:
    """The endpoints of ``YahooReplay``; they read its ``data_dir``, ``as_of``, ``_live``, ``_funds``,
    ``_crumbs`` and ``_lock``."""

    # -- data ------------------------------------------------------------------------------------

    def history(self, symbol: str) -> pd.DataFrame | None:
        """The bars the replay would serve for ``symbol`` right now (respecting ``as_of`` and live)."""
        bars = self._history_file(symbol)
        if bars is None:
            return None
        if isinstance(self.as_of, datetime):
            bars = bars[bars["close_time"] <= _epoch(self.as_of)]
        elif isinstance(self.as_of, date):
            bars = bars[bars.index <= pd.Timestamp(self.as_of)]
        with self._lock:
            live = self._live.get(symbol.upper())
        if live is not None:
            bars = self._with_live(bars, live)
        return bars

    def _history_file(self, symbol: str) -> pd.DataFrame | None:
        stem = symbol.upper().lstrip("^")
        if not stem or not stem.replace("-", "").replace(".", "").isalnum():
            return None
        path = self.data_dir / f"{stem}_daily.csv"
        return _load_history(path) if path.is_file() else None

    @staticmethod
    def _with_live(bars: pd.DataFrame, live: _Live) -> pd.DataFrame:
        day = pd.Timestamp(live.time.astimezone(NEW_YORK).date())
        if len(bars) and bars.index[-1] > day:
            return bars
        stamp = _epoch(live.time)
        if len(bars) and bars.index[-1] == day:
            row = bars.iloc[-1].copy()
            bars = bars.iloc[:-1]
        else:
            row = pd.Series(
                {"open": live.price, "high": live.price, "low": live.price, "volume": 0.0},
                dtype=float,
            )
            row["close_time"] = _epoch(_exchange_time(day.date(), SESSION_CLOSE))
        row["close"] = row["adj_close"] = live.price
        row["high"] = np.nanmax([row.get("high", np.nan), live.price])
        row["low"] = np.nanmin([row.get("low", np.nan), live.price])
        # A live daily bar carries the time of the latest trade, not the session open.
        row["bar_time"] = stamp
        return pd.concat([bars, row.to_frame(day).T.astype(bars.dtypes.to_dict())])

    def _facts(self, symbol: str) -> _FundFacts | None:
        with self._lock:
            return self._funds.get(symbol.upper())

    # -- endpoints -------------------------------------------------------------------------------

    def _cookie_response(self) -> tuple[int, dict[str, str], bytes]:
        # Yahoo answers fc.yahoo.com with a 404 whose only purpose is the A3 cookie for .yahoo.com;
        # yfinance stores it in its cookie cache and skips this request from then on. Not `Secure`,
        # because the replay speaks plain HTTP and curl drops secure cookies from plain origins.
        with self._lock:
            serial = len(self._crumbs) + 1
            value = f"d=AQABBreplay{serial:04d}&S=AQAAAreplay{serial:04d}"
            self._crumbs[value] = None
        # The cookie's expiry is read by yfinance against the wall clock, not the replayed market's.
        expires = (datetime.now(UTC) + timedelta(days=365)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        cookie = (
            f"A3={value}; Expires={expires}; Max-Age=31557600; "
            "Domain=.yahoo.com; Path=/; SameSite=None; HttpOnly"
        )
        return 404, {"Content-Type": "text/html", "Set-Cookie": cookie}, b"<html><body>404</body></html>"

    def _crumb_response(self, cookie: str | None) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            if cookie is None or cookie not in self._crumbs:
                crumb = None
            else:
                crumb = self._crumbs[cookie]
                if crumb is None:  # a new crumb, unlike every one minted before for any cookie
                    serial = sum(minted is not None for minted in self._crumbs.values()) + 1
                    crumb = self._crumbs[cookie] = f"rEpLaYcRuMb{serial:04d}"
        if crumb is None:
            return _unauthorized("Invalid Cookie")
        return 200, {"Content-Type": "text/plain;charset=utf-8"}, crumb.encode()

    def _refuse_crumb(
        self, cookie: str | None, query: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Rule 2: a 401 unless the request's crumb is the one minted for its A3 cookie."""
        with self._lock:
            if cookie is None or cookie not in self._crumbs:
                return _unauthorized("Invalid Cookie")
            minted = self._crumbs[cookie]
        if minted is None or query.get("crumb") != minted:
            return _unauthorized("Invalid Crumb")
        return None

    def _chart(self, symbol: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        symbol = symbol.upper()
        bars = self.history(symbol)
        if bars is None or bars.empty:
            return _not_found("/v8/finance/chart/", (symbol,))
        span = _daily_span(query)
        if span is not None and span[1] - span[0] > LONGEST_DAILY_SPAN:
            description = (
                f"1d data not available for startTime={span[0]} and endTime={span[1]}. "
                "Only 100 years worth of day granularity data are allowed to be fetched per request."
            )
            error = {"code": "Bad Request", "description": description}
            return _json_response(400, {"chart": {"result": None, "error": error}})
        if query.get("interval", "1d") != "1d":
            body = {
                "chart": {
                    "result": None,
                    "error": {"code": "Unprocessable Entity", "description": "Only 1d bars are replayed"},
                }
            }
            logger.warning("Yahoo replay asked for interval %s of %s", query.get("interval"), symbol)
            return _json_response(422, body)
        chosen = self._select(bars, query)
        earlier = bars[bars.index < chosen.index[0]] if len(chosen) else bars
        previous_close = float(earlier["close"].iloc[-1]) if len(earlier) and len(chosen) else None
        meta = self._meta(symbol, bars, previous_close, query.get("range", ""))
        if chosen.empty:
            result: dict[str, Any] = {"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}
            return _json_response(200, {"chart": {"result": [result], "error": None}})
        result = {
            "meta": meta,
            "timestamp": [int(t) for t in chosen["bar_time"]],
            "indicators": {
                "quote": [
                    {
                        "open": _json_list(chosen["open"]),
                        "high": _json_list(chosen["high"]),
                        "low": _json_list(chosen["low"]),
                        "close": _json_list(chosen["close"]),
                        "volume": _json_volumes(chosen["volume"]),
                    }
                ],
                "adjclose": [{"adjclose": _json_list(chosen["adj_close"].fillna(chosen["close"]))}],
            },
        }
        splits = self._split_events(symbol, chosen)
        if splits:
            result["events"] = {"splits": splits}
        return _json_response(200, {"chart": {"result": [result], "error": None}})

    @staticmethod
    def _select(bars: pd.DataFrame, query: dict[str, str]) -> pd.DataFrame:
        if "period1" in query or "period2" in query:
            first = int(query.get("period1") or -(2**62))
            last = int(query.get("period2") or 2**62)
            return bars[(bars["bar_time"] >= first) & (bars["bar_time"] < last)]
        span = query.get("range", "1mo")
        if span == "max" or bars.empty:
            return bars
        if span.endswith("d") and span[:-1].isdigit():
            return bars.iloc[-int(span[:-1]) :]
        end = bars.index[-1]
        if span == "ytd":
            return bars[bars.index >= pd.Timestamp(end.year, 1, 1)]
        return bars[bars.index > end - _RANGE_OFFSETS.get(span, pd.DateOffset(months=1))]

    @staticmethod
    def _split_events(symbol: str, chosen: pd.DataFrame) -> dict[str, dict[str, Any]]:
        events: dict[str, dict[str, Any]] = {}
        for day, numerator, denominator in _SPLITS.get(symbol, ()):
            stamp = pd.Timestamp(day)
            if stamp in chosen.index:
                when = int(chosen["bar_time"].loc[stamp])
                events[str(when)] = {
                    "date": when,
                    "numerator": numerator,
                    "denominator": denominator,
                    "splitRatio": f"{numerator}:{denominator}",
                }
        return events

    def _meta(
        self, symbol: str, bars: pd.DataFrame | None, previous_close: float | None, span: str
    ) -> dict[str, Any]:
        name, exchange, kind = _listing(symbol)
        if bars is None:
            bars = self._history_file(symbol)
        last_day = bars.index[-1].date() if bars is not None and len(bars) else date(2024, 1, 2)
        offset = _exchange_time(last_day, SESSION_OPEN).utcoffset() or timedelta(0)
        zone = _exchange_time(last_day, SESSION_OPEN).tzname() or "EST"

        def period(start: time, end: time) -> dict[str, Any]:
            return {
                "timezone": zone,
                "start": _epoch(_exchange_time(last_day, start)),
                "end": _epoch(_exchange_time(last_day, end)),
                "gmtoffset": int(offset.total_seconds()),
            }

        meta: dict[str, Any] = {
            "currency": "USD",
            "symbol": symbol,
            "exchangeName": exchange,
            "fullExchangeName": exchange,
            "instrumentType": kind,
            "hasPrePostMarketData": kind == "ETF",
            "gmtoffset": int(offset.total_seconds()),
            "timezone": zone,
            "exchangeTimezoneName": "America/New_York",
            "longName": name,
            "shortName": name,
            "priceHint": 2,
            "currentTradingPeriod": {
                "pre": period(time(4, 0), SESSION_OPEN),
                "regular": period(SESSION_OPEN, SESSION_CLOSE),
                "post": period(SESSION_CLOSE, time(20, 0)),
            },
            "dataGranularity": "1d",
            "range": span,
            "validRanges": _VALID_RANGES,
        }
        if bars is not None and len(bars):
            last = bars.iloc[-1]
            with self._lock:
                live = self._live.get(symbol)
            meta |= {
                "firstTradeDate": int(bars["bar_time"].iloc[0]),
                "regularMarketTime": _epoch(live.time) if live is not None else int(last["close_time"]),
                "regularMarketPrice": float(last["close"]),
                "regularMarketDayHigh": None if pd.isna(last["high"]) else float(last["high"]),
                "regularMarketDayLow": None if pd.isna(last["low"]) else float(last["low"]),
                "regularMarketVolume": 0 if pd.isna(last["volume"]) else int(last["volume"]),
                "fiftyTwoWeekHigh": float(bars["close"].iloc[-252:].max()),
                "fiftyTwoWeekLow": float(bars["close"].iloc[-252:].min()),
            }
            if previous_close is not None:
                meta["chartPreviousClose"] = previous_close
            if len(bars) > 1 and span:
                meta["previousClose"] = float(bars["close"].iloc[-2])
        return meta

    def _quote_summary(self, symbol: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        symbol = symbol.upper()
        if self._history_file(symbol) is None:
            return _not_found("/v10/finance/quoteSummary/", (symbol,))
        asked = {m for m in query.get("modules", "").split(",") if m}
        unknown = asked - _INFO_MODULES - _FUND_MODULES
        if unknown:
            logger.warning("Yahoo replay ignores quoteSummary modules %s for %s", sorted(unknown), symbol)
        name, exchange, kind = _listing(symbol)
        facts = self._facts(symbol) if kind == "ETF" else None
        bars = self.history(symbol)
        price = float(bars["close"].iloc[-1]) if bars is not None and len(bars) else None
        summary = f"{name} (Yahoo replay for capgap tests)."
        modules: dict[str, Any] = {
            "quoteType": {
                "exchange": exchange,
                "quoteType": kind,
                "symbol": symbol,
                "underlyingSymbol": symbol,
                "shortName": name,
                "longName": name,
                "timeZoneFullName": "America/New_York",
                "timeZoneShortName": "EST",
                "market": "us_market",
                "messageBoardId": f"finmb_{symbol.lstrip('^')}",
            },
            "summaryProfile": {"longBusinessSummary": summary, "maxAge": 86400},
            "assetProfile": {"longBusinessSummary": summary, "maxAge": 86400},
            "summaryDetail": {"maxAge": 1, "currency": "USD", "previousClose": price},
            "defaultKeyStatistics": {"maxAge": 1},
            "financialData": {"maxAge": 86400},
        }
        if kind == "ETF":
            family, category = _FUND_PROFILES.get(symbol, ("Replay Funds", "Blend"))
            fees: dict[str, Any] = {"annualHoldingsTurnover": 0.2}
            # Yahoo's fund ratios are inverted (earnings / price, book / price). priceToBook and
            # priceToEarnings are served only when a test sets them (a fund Yahoo has no holdings data for
            # leaves them out); the other two are synthetic, for the payload's shape.
            holdings: dict[str, Any] = {"priceToSales": 0.5, "medianMarketCap": 3e3}
            modules["defaultKeyStatistics"] |= {
                "fundFamily": family,
                "category": category,
                "legalType": "Exchange Traded Fund",
            }
            if facts is not None and facts.expense_ratio is not None:
                fees["annualReportExpenseRatio"] = facts.expense_ratio
            if facts is not None and facts.total_assets is not None:
                modules["summaryDetail"]["totalAssets"] = facts.total_assets
                modules["defaultKeyStatistics"]["totalAssets"] = facts.total_assets
            if facts is not None and facts.book_to_price is not None:
                holdings["priceToBook"] = facts.book_to_price
            if facts is not None and facts.earnings_to_price is not None:
                holdings["priceToEarnings"] = facts.earnings_to_price
            modules["fundProfile"] = {
                "maxAge": 1,
                "family": family,
                "categoryName": category,
                "legalType": "Exchange Traded Fund",
                "feesExpensesInvestment": fees,
                "feesExpensesInvestmentCat": {"annualReportExpenseRatio": 0.0045},
            }
            modules["topHoldings"] = {
                "maxAge": 1,
                "cashPosition": 0.001,
                "stockPosition": 0.999,
                "bondPosition": 0.0,
                "holdings": [],
                "equityHoldings": holdings,
                "bondHoldings": {},
                "bondRatings": [],
                "sectorWeightings": [],
            }
        result = {name: body for name, body in modules.items() if name in asked}
        return _json_response(200, {"quoteSummary": {"result": [result], "error": None}})

    def _quote(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        found = []
        for symbol in _symbols_of("/v7/finance/quote", query):
            bars = self.history(symbol)
            if bars is None or bars.empty:
                continue
            name, exchange, kind = _listing(symbol)
            last = bars.iloc[-1]
            quote: dict[str, Any] = {
                "language": "en-US",
                "region": "US",
                "quoteType": kind,
                "typeDisp": "ETF" if kind == "ETF" else "Index",
                "currency": "USD",
                "exchange": exchange,
                "shortName": name,
                "longName": name,
                "symbol": symbol,
                "regularMarketPrice": float(last["close"]),
                "regularMarketTime": int(last["close_time"]),
                "exchangeTimezoneName": "America/New_York",
            }
            if len(bars) > 1:
                quote["regularMarketPreviousClose"] = float(bars["close"].iloc[-2])
            facts = self._facts(symbol) if kind == "ETF" else None
            if facts is not None and facts.net_expense_ratio is not None:
                quote["netExpenseRatio"] = facts.net_expense_ratio
            if facts is not None and facts.total_assets is not None:
                quote["netAssets"] = facts.total_assets
            found.append(quote)
        return _json_response(200, {"quoteResponse": {"result": found, "error": None}})

    def _timeseries(self, symbol: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        symbol = symbol.upper()
        if self._history_file(symbol) is None:
            return _json_response(200, {"timeseries": {"result": [], "error": None}})
        kinds = [k for k in query.get("type", "").split(",") if k]
        result = [{"meta": {"symbol": [symbol], "type": [kind]}} for kind in kinds]
        return _json_response(200, {"timeseries": {"result": result, "error": None}})


def _json_response(status: int, body: object) -> tuple[int, dict[str, str], bytes]:
    # NaN/Infinity pass through so tests can serve a non-finite fund field; prices never carry them.
    encoded = json.dumps(body, allow_nan=True).encode()
    return status, {"Content-Type": "application/json;charset=utf-8"}, encoded


def _unauthorized(description: str) -> tuple[int, dict[str, str], bytes]:
    error = {"code": "Unauthorized", "description": description}
    return _json_response(401, {"finance": {"result": None, "error": error}})


def _daily_span(query: Mapping[str, str]) -> tuple[int, int] | None:
    """``(period1, period2)`` of a daily chart request that names both; None otherwise."""
    if query.get("interval", "1d") != "1d" or "period1" not in query or "period2" not in query:
        return None
    try:
        return int(query["period1"]), int(query["period2"])
    except ValueError:
        return None


def _not_found(path: str, symbols: tuple[str, ...]) -> tuple[int, dict[str, str], bytes]:
    symbol = symbols[0] if symbols else ""
    if path.startswith("/v8/finance/chart/"):
        error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
        return _json_response(404, {"chart": {"result": None, "error": error}})
    if path.startswith("/v10/finance/quoteSummary/"):
        error = {"code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}
        return _json_response(404, {"quoteSummary": {"result": None, "error": error}})
    error = {"code": "Not Found", "description": "HTTP 404 Not Found"}
    return _json_response(404, {"finance": {"result": None, "error": error}})
