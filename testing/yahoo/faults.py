"""Faults a test injects into the replay: Yahoo's error statuses in its own shapes, 200s without data,
outage pages and empty bodies (rule 4 of ``testing.yahoo``), aimed at a symbol, host, path or query."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from testing.yahoo.payloads import _json_response, _not_found, _unauthorized

# Rule 5: the query of yfinance's timezone lookup, for ``fail(..., query=TIMEZONE_LOOKUP)``.
TIMEZONE_LOOKUP: Final[Mapping[str, str]] = {"range": "1d", "interval": "1d"}


EMPTY: Final = "empty"
"""``fail(pattern, EMPTY)``: answer 200 with no data (a chart without timestamps, an empty quote)."""
HTML: Final = "html"
"""``fail(pattern, HTML)``: answer Yahoo's "Will be right back" page as ``text/html`` (503 unless told)."""
BLANK: Final = "blank"
"""``fail(pattern, BLANK)``: answer with an empty body (200 unless told)."""

_OUTAGE_PAGE: Final = (
    b'<!DOCTYPE html><html lang="en-us"><head><meta charset="utf-8"><title>Yahoo</title></head>'
    b'<body><div class="message"><h1>Will be right back...</h1>'
    b"<p>Thank you for your patience.</p><p>Our engineers are working quickly to resolve the issue.</p>"
    b"</div></body></html>"
)


@dataclass
class _Fault:
    pattern: str
    status: int | str
    remaining: int | None  # None: until cleared
    query: Mapping[str, str]
    http_status: int | None

    def matches(self, host: str, path: str, query: Mapping[str, str], symbols: tuple[str, ...]) -> bool:
        if any(query.get(name) != value for name, value in self.query.items()):
            return False
        if "/" in self.pattern:
            return fnmatch.fnmatchcase(path, self.pattern)
        if self.pattern.endswith("yahoo.com"):
            return host == self.pattern
        return self.pattern.upper() in symbols


class FaultInjection:
    """``fail`` and ``clear_faults`` of ``YahooReplay``, and how a fault answers; they use its ``_faults``
    and ``_lock``."""

    def fail(
        self,
        pattern: str,
        status: int | str,
        *,
        times: int | None = None,
        query: Mapping[str, str] | None = None,
        http_status: int | None = None,
    ) -> None:
        """Answer requests matching ``pattern`` with a fault, ``times`` times (None: until cleared).

        ``pattern`` is a symbol (``"IWM"``: any request about it), a host (``"fc.yahoo.com"``) or a path
        glob (``"/v10/finance/quoteSummary/*"``); with ``query``, only requests carrying those parameter
        values match (``TIMEZONE_LOOKUP``: yfinance's timezone lookup alone). ``status`` is an HTTP status
        in Yahoo's shape for that endpoint (401 "Invalid Crumb", 404 not found, 429 "Too Many Requests",
        5xx), ``EMPTY`` for a 200 without data, ``HTML`` for an error page or ``BLANK`` for an empty body;
        ``http_status`` overrides the status an ``HTML`` or ``BLANK`` fault answers with.

        A fault counts HTTP requests, and yfinance sends a failed request (any status from 400 up) a
        second time after renewing its crumb: ``times=1`` with a 4xx/5xx fails one attempt, not one call.
        """
        if http_status is not None and status not in (HTML, BLANK):
            raise ValueError("http_status only applies to HTML and BLANK faults")
        with self._lock:
            self._faults.insert(0, _Fault(pattern, status, times, dict(query or {}), http_status))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(
        self, host: str, path: str, query: Mapping[str, str], symbols: tuple[str, ...]
    ) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(host, path, query, symbols):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _fault_response(
        self, fault: _Fault, path: str, symbols: tuple[str, ...]
    ) -> tuple[int, dict[str, str], bytes]:
        if fault.status == 429:
            return 429, {"Content-Type": "text/plain"}, b"Too Many Requests\r\n"
        if fault.status == EMPTY:
            return self._empty_response(path, symbols)
        if fault.status == HTML:
            return fault.http_status or 503, {"Content-Type": "text/html; charset=utf-8"}, _OUTAGE_PAGE
        if fault.status == BLANK:
            return fault.http_status or 200, {"Content-Type": "application/json;charset=utf-8"}, b""
        if fault.status == 401:
            return _unauthorized("Invalid Crumb")
        if fault.status == 404:
            return _not_found(path, symbols)
        if isinstance(fault.status, int):
            body = {"finance": {"result": None, "error": {"code": "Internal", "description": "Replay fault"}}}
            return _json_response(fault.status, body)
        raise ValueError(f"unknown replay fault {fault.status!r}")

    def _empty_response(self, path: str, symbols: tuple[str, ...]) -> tuple[int, dict[str, str], bytes]:
        symbol = symbols[0] if symbols else ""
        if path.startswith("/v8/finance/chart/"):
            meta = self._meta(symbol, None, None, "")
            result = {"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}
            return _json_response(200, {"chart": {"result": [result], "error": None}})
        if path.startswith("/v10/finance/quoteSummary/"):
            return _json_response(200, {"quoteSummary": {"result": [{}], "error": None}})
        if path == "/v7/finance/quote":
            return _json_response(200, {"quoteResponse": {"result": [], "error": None}})
        if path.startswith("/ws/fundamentals-timeseries/"):
            return _json_response(200, {"timeseries": {"result": [], "error": None}})
        return 200, {"Content-Type": "text/plain"}, b""
