"""The SQLite cache of closes, latest quotes and fund-fact snapshots, with when and where each came from.

Commands answer from a ``MarketSnapshot`` loaded from here, never from the source directly, so a slow or
failing upstream never holds up a reply.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from database.connection import reading, write_lock
from database.migrations import Migration, migrate
from market.instruments import ETFS, HEADLINE
from market.model import FundFacts, MarketData, Quote
from market.plausibility import HeldValue

if TYPE_CHECKING:
    import pandas as pd
    import sqlite_utils


def _m001_market(db: sqlite_utils.Database) -> None:
    db.table("closes").create(
        {"symbol": str, "day": str, "close": float, "source": str, "fetched_at": str},
        pk=("symbol", "day"),
        if_not_exists=True,
    )
    db.table("quotes").create(
        {
            "symbol": str,
            "price": float,
            "time": str,
            "previous_close": float,
            "source": str,
            "fetched_at": str,
        },
        pk="symbol",
        if_not_exists=True,
    )
    db.table("fund_facts").create(
        {
            "symbol": str,
            "as_of": str,
            "expense_ratio": float,
            "total_assets": float,
            "price_to_book": float,
            "source": str,
            "fetched_at": str,
        },
        pk=("symbol", "as_of"),
        if_not_exists=True,
    )
    db.table("refreshes").create(
        {"id": int, "kind": str, "at": str, "ok": int, "source": str, "detail": str},
        pk="id",
        if_not_exists=True,
    )


def _m002_held_values(db: sqlite_utils.Database) -> None:
    # A refresh's failure in words a user reads (``reason``) beside the technical ``detail``.
    if "reason" not in db.table("refreshes").columns_dict:
        db.execute("ALTER TABLE refreshes ADD COLUMN reason TEXT")
    # Values market.plausibility held out of ``closes`` and ``quotes``: counted, shown and re-judged.
    db.table("held_values").create(
        {
            "symbol": str,
            "day": str,
            "kind": str,  # "close" or "quote"
            "value": float,  # NULL for NaN
            "reference": float,
            "status": str,  # "unconfirmed" or "rejected"
            "reason": str,
            "first_seen": str,
            "last_seen": str,
        },
        pk=("symbol", "day", "kind"),
        if_not_exists=True,
    )


def _m003_price_to_earnings(db: sqlite_utils.Database) -> None:
    # The holdings' P/E beside their P/B: the second valuation gap.
    if "price_to_earnings" not in db.table("fund_facts").columns_dict:
        db.execute("ALTER TABLE fund_facts ADD COLUMN price_to_earnings REAL")


# The newest close both headline indices have is what an answer is "as of" and what freshness is judged on;
# the other instruments say their own dates where they are shown.
def _m004_adjusted_closes(db: sqlite_utils.Database) -> None:
    # The funds' adjusted closes (Yahoo's Adj Close) beside their closes: total returns.
    if "adj_close" not in db.table("closes").columns_dict:
        db.execute("ALTER TABLE closes ADD COLUMN adj_close REAL")


INDEX_SYMBOLS = tuple(i.symbol for i in HEADLINE)
FUND_SYMBOLS = frozenset(e.symbol for e in ETFS)
# How many held values a snapshot carries for answers to mention (the newest first).
RECENT_HELD = 20

MIGRATIONS: list[Migration] = [
    ("market-001-cache", _m001_market),
    ("market-002-held-values", _m002_held_values),
    ("market-003-price-to-earnings", _m003_price_to_earnings),
    ("market-004-adjusted-closes", _m004_adjusted_closes),
]

# Two adjusted closes of the same day agree when their ratio is this close to 1 (6-decimal prices).
_SAME_BASIS = 1e-7


@dataclass(frozen=True)
class MarketSnapshot:
    """Everything the cache knows, in frames: what every answer is built from."""

    closes: pd.DataFrame  # trading dates x symbols, official closes only
    quotes: dict[str, Quote]
    funds: pd.DataFrame  # symbol, as_of (date), expense_ratio, total_assets, price_to_book, source,
    # fetched_at, price_to_earnings
    source: str | None  # where the newest closes came from
    fetched_at: datetime | None  # when they were fetched
    last_error: str | None = None  # the last price refresh's failure, in words a user reads
    held: tuple[HeldValue, ...] = ()  # the newest values held aside as implausible, newest first
    # trading dates x fund symbols, the funds' adjusted closes (split- and dividend-adjusted, on the basis
    # of the newest fetch: only returns mean anything); NaN where there is none. Same conventions as
    # ``closes``; indices have no column (their adjusted close is their close).
    adjusted: pd.DataFrame | None = None

    @property
    def latest_day(self) -> date | None:
        """The newest close both indices have: an answer "as of" it is true of both."""
        if self.closes.empty:
            return None
        import pandas as pd

        lasts = [self.closes[s].last_valid_index() for s in INDEX_SYMBOLS if s in self.closes.columns]
        known = [pd.Timestamp(d) for d in lasts if d is not None]  # type: ignore[arg-type]
        return min(known).date() if known else self.closes.index[-1].date()

    def series(self, symbol: str) -> pd.Series:
        import pandas as pd

        if symbol not in self.closes.columns:
            return pd.Series(dtype="float64")
        return self.closes[symbol].dropna()

    def adjusted_series(self, symbol: str) -> pd.Series:
        """A fund's adjusted closes (empty for an index or a fund without them)."""
        import pandas as pd

        if self.adjusted is None or symbol not in self.adjusted.columns:
            return pd.Series(dtype="float64")
        return self.adjusted[symbol].dropna()

    def fund(self, symbol: str) -> FundFacts | None:
        """The newest fund-facts snapshot of ``symbol``; unknown fields stay None."""
        rows = self.funds[self.funds["symbol"] == symbol]
        if rows.empty:
            return None
        row = rows.sort_values("as_of").iloc[-1]

        def known(name: str) -> float | None:
            value = row[name]
            return None if value is None or value != value else float(value)  # NaN is unknown

        return FundFacts(
            symbol,
            row["as_of"],
            known("expense_ratio"),
            known("total_assets"),
            known("price_to_book"),
            str(row["source"]),
            known("price_to_earnings"),
        )


class MarketCache:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._write = write_lock(db)
        migrate(db, MIGRATIONS)
        # A database in memory ends with its process (``capgap ask`` answers from one, filled from
        # scratch): its closes are kept as the rows the table would hold, in a frame, rather than written
        # as tens of thousands of rows only to be read back once. Everything else stays in SQLite, and
        # the snapshot is made from those rows by the same code either way.
        self._rows: pd.DataFrame | None = None
        if db.execute("PRAGMA database_list").fetchone()[2] == "":
            import pandas as pd

            self._rows = pd.DataFrame(
                {
                    name: pd.Series(dtype=dtype)
                    for name, dtype in (
                        ("symbol", object),
                        ("day", object),
                        ("close", "float64"),
                        ("adj_close", "float64"),
                    )
                }
            )

    def store(self, data: MarketData, settled_through: date | None) -> int:
        """Keep the closes of sessions settled by ``settled_through`` and every quote; returns rows written.

        A bar for a session still trading is a live price, not a close: it goes to ``quotes`` only.
        A fund's adjusted closes are kept beside its closes; when the fetched ones are on a newer basis
        than the cached ones (a dividend since re-scaled Yahoo's whole Adj Close history), the cached ones
        are re-scaled to it at the first day both have, so returns across the seam stay true. A day the
        fetch has no adjusted close for (missing, or left out by ``plausibility.screen_adjusted``) keeps
        the cached one, on the new basis: a bad fetch never erases a good reading.
        """
        import numpy as np
        import pandas as pd

        fetched = data.fetched_at.isoformat()
        frame = data.closes
        if settled_through is not None:
            frame = frame[frame.index <= pd.Timestamp(settled_through)]
        long = frame.stack().dropna()
        symbols = long.index.get_level_values(1).astype(str).to_numpy()
        # ISO days in C (DatetimeIndex.strftime formats one timestamp at a time in Python).
        stamps = pd.DatetimeIndex(long.index.get_level_values(0)).to_numpy(dtype="datetime64[D]")
        days = np.datetime_as_string(stamps, unit="D")
        values = long.to_numpy(dtype="float64")
        adjusted_frame = (
            data.adjusted.reindex(index=frame.index, columns=frame.columns)
            if data.adjusted is not None
            else pd.DataFrame(np.nan, index=frame.index, columns=frame.columns)
        )
        adjusted_long = adjusted_frame.stack(future_stack=True).reindex(long.index).to_numpy(dtype="float64")
        rescale = self._rescalings(adjusted_frame)
        quotes = [
            {
                "symbol": q.symbol,
                "price": q.price,
                "time": q.time.isoformat(),
                "previous_close": q.previous_close,
                "source": data.source,
                "fetched_at": fetched,
            }
            for q in data.quotes.values()
        ]
        with self._write, self.db.atomic():
            for symbol, factor in rescale.items():
                # Every cached day: those the fetch has a value for are replaced below, the others are kept.
                if self._rows is not None:
                    held = self._rows["symbol"] == symbol
                    self._rows.loc[held, "adj_close"] = self._rows.loc[held, "adj_close"] * factor
                else:
                    self.db.execute(
                        "UPDATE closes SET adj_close = adj_close * ? WHERE symbol = ?", [factor, symbol]
                    )
            if len(values) and self._rows is not None:
                new = pd.DataFrame(
                    {
                        "symbol": symbols.astype(object),
                        "day": days.astype(object),
                        "close": values,
                        "adj_close": adjusted_long,
                    },
                    columns=["symbol", "day", "close", "adj_close"],
                )
                if len(self._rows):
                    # What the table's key does on disk: a day stored again replaces the earlier close,
                    # and keeps its adjusted close when the new row has none.
                    lacking = new["adj_close"].isna().to_numpy()
                    if lacking.any():
                        cached = self._rows.set_index(["symbol", "day"])["adj_close"]
                        wanted = pd.MultiIndex.from_arrays(
                            [new["symbol"].to_numpy()[lacking], new["day"].to_numpy()[lacking]]
                        )
                        new.loc[lacking, "adj_close"] = cached.reindex(wanted).to_numpy()
                    new = pd.concat([self._rows, new], ignore_index=True)
                    new = new.drop_duplicates(["symbol", "day"], keep="last", ignore_index=True)
                self._rows = new
            elif len(values):
                # Plain tuples and one statement: sqlite-utils' upsert_all builds a dict, a JSON check and
                # a query per row, which for a whole history (tens of thousands of closes) was most of a
                # first fill.
                self.db.conn.executemany(
                    "INSERT INTO closes (symbol, day, close, adj_close, source, fetched_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (symbol, day) DO UPDATE SET close = excluded.close, "
                    "adj_close = COALESCE(excluded.adj_close, closes.adj_close), source = excluded.source, "
                    "fetched_at = excluded.fetched_at",
                    zip(
                        symbols.tolist(),
                        days.tolist(),
                        values.tolist(),
                        [None if v != v else v for v in adjusted_long.tolist()],
                        itertools.repeat(data.source),
                        itertools.repeat(fetched),
                        strict=False,
                    ),
                )
            if quotes:
                self.db.table("quotes").upsert_all(quotes, pk="symbol")
        return len(values)

    def _rescalings(self, adjusted: pd.DataFrame) -> dict[str, float]:
        """For each fund whose fetched adjusted closes start on a day the cache has one for too, on another
        basis: the factor that brings the cached ones onto the fetched basis."""
        rescale = {}
        for symbol in adjusted.columns:
            present = adjusted[symbol].dropna()
            if present.empty:
                continue
            first = present.index[0].strftime("%Y-%m-%d")
            if self._rows is not None:
                rows = self._rows[(self._rows["symbol"] == symbol) & (self._rows["day"] == first)]
                cached = float(rows["adj_close"].iloc[0]) if len(rows) else None
            else:
                row = self.db.execute(
                    "SELECT adj_close FROM closes WHERE symbol = ? AND day = ?", [symbol, first]
                ).fetchone()
                cached = row[0] if row is not None else None
            if cached is None or cached != cached or cached <= 0:
                continue
            factor = float(present.iloc[0]) / float(cached)
            if abs(factor - 1.0) > _SAME_BASIS:
                rescale[str(symbol)] = factor
        return rescale

    def store_funds(self, facts: list[FundFacts], fetched_at: datetime) -> None:
        rows = [
            {
                "symbol": f.symbol,
                "as_of": f.as_of.isoformat(),
                "expense_ratio": f.expense_ratio,
                "total_assets": f.total_assets,
                "price_to_book": f.price_to_book,
                "price_to_earnings": f.price_to_earnings,
                "source": f.source,
                "fetched_at": fetched_at.isoformat(),
            }
            for f in facts
        ]
        if rows:
            with self._write, self.db.atomic():
                self.db.table("fund_facts").upsert_all(rows, pk=("symbol", "as_of"))

    def has_funds(self) -> bool:
        """Whether any fund-facts snapshot is cached."""
        return self.db.execute("SELECT 1 FROM fund_facts LIMIT 1").fetchone() is not None

    def record_refresh(
        self, kind: str, at: datetime, ok: bool, source: str, detail: str = "", reason: str | None = None
    ) -> None:
        """Log one refresh: ``detail`` is for the log and /stats, ``reason`` the sentence a chat may see."""
        row = {"kind": kind, "at": at.isoformat(), "ok": int(ok), "source": source, "detail": detail[:2000]}
        with self._write, self.db.atomic():
            self.db.table("refreshes").insert(row | {"reason": reason})
            # Keep the log short: it is for health checks, not an archive.
            self.db.execute("DELETE FROM refreshes WHERE id <= (SELECT MAX(id) FROM refreshes) - 1000")

    def last_refresh(self, kind: str, ok: bool | None = None) -> dict[str, object] | None:
        sql = "SELECT * FROM refreshes WHERE kind = ?" + ("" if ok is None else " AND ok = ?")
        params: list[object] = [kind] if ok is None else [kind, int(ok)]
        rows = list(self.db.query(sql + " ORDER BY id DESC LIMIT 1", params))
        return rows[0] if rows else None

    def record_held(
        self, held: tuple[HeldValue, ...], judged: dict[str, tuple[date, date]], at: datetime
    ) -> list[HeldValue]:
        """Keep this refresh's verdicts: ``held`` are the values held aside now, ``judged`` each symbol's
        first and last day that were looked at (a value held before in that span and not now has since
        been confirmed, and its row goes). Returns the held values that are new or changed status."""
        seen = at.isoformat()
        table = self.db.table("held_values")
        changed = []
        with self._write, self.db.atomic():
            keep = {(h.symbol, h.day.isoformat(), h.kind) for h in held}
            for symbol, (first, last) in judged.items():
                rows = self.db.execute(
                    "SELECT symbol, day, kind FROM held_values WHERE symbol = ? AND day BETWEEN ? AND ?",
                    [symbol, first.isoformat(), last.isoformat()],
                ).fetchall()
                for row in rows:
                    if tuple(row) not in keep:
                        table.delete(tuple(row))
            for value in held:
                key = (value.symbol, value.day.isoformat(), value.kind)
                before = list(
                    self.db.execute(
                        "SELECT status, first_seen FROM held_values WHERE symbol = ? AND day = ? AND kind = ?",
                        list(key),
                    ).fetchall()
                )
                if not before or before[0][0] != value.status:
                    changed.append(value)
                table.upsert(
                    {
                        "symbol": value.symbol,
                        "day": key[1],
                        "kind": value.kind,
                        "value": value.value if value.value == value.value else None,
                        "reference": value.reference,
                        "status": value.status,
                        "reason": value.reason,
                        "first_seen": before[0][1] if before else seen,
                        "last_seen": seen,
                    },
                    pk=("symbol", "day", "kind"),
                )
        return changed

    def held_values(self, as_of: date | None = None, limit: int = RECENT_HELD) -> tuple[HeldValue, ...]:
        """The newest values held aside (on or before ``as_of``), newest day first."""
        where, params = ("", []) if as_of is None else (" WHERE day <= ?", [as_of.isoformat()])
        rows = self.db.execute(
            "SELECT symbol, day, kind, value, reference, status, reason FROM held_values"
            + where
            + " ORDER BY day DESC, symbol LIMIT ?",
            [*params, limit],
        ).fetchall()
        return tuple(
            HeldValue(
                symbol=symbol,
                day=date.fromisoformat(day),
                value=float("nan") if value is None else float(value),
                reference=reference,
                status=status,
                reason=reason,
                kind=kind,
            )
            for symbol, day, kind, value, reference, status, reason in rows
        )

    def held_counts(self) -> dict[str, int]:
        """How many values are held aside, by status ("unconfirmed", "rejected")."""
        rows = self.db.execute("SELECT status, COUNT(*) FROM held_values GROUP BY status").fetchall()
        return {"unconfirmed": 0, "rejected": 0} | {status: count for status, count in rows}

    def closes_before(self, first_days: dict[str, date]) -> dict[str, float]:
        """Each symbol's last cached close before its given day: what a fetched frame continues from."""
        prior = {}
        for symbol, day in first_days.items():
            if self._rows is not None:
                rows = self._rows[(self._rows["symbol"] == symbol) & (self._rows["day"] < day.isoformat())]
                if len(rows):
                    prior[symbol] = float(rows.sort_values("day")["close"].iloc[-1])
                continue
            row = self.db.execute(
                "SELECT close FROM closes WHERE symbol = ? AND day < ? ORDER BY day DESC LIMIT 1",
                [symbol, day.isoformat()],
            ).fetchone()
            if row is not None:
                prior[symbol] = float(row[0])
        return prior

    def latest_days(self) -> dict[str, date]:
        """Each symbol's newest cached close."""
        if self._rows is not None:
            newest = self._rows.groupby("symbol")["day"].max()
            return {str(symbol): date.fromisoformat(day) for symbol, day in newest.items()}
        rows = self.db.execute("SELECT symbol, MAX(day) FROM closes GROUP BY symbol").fetchall()
        return {symbol: date.fromisoformat(day) for symbol, day in rows}

    def funds_without_adjusted(self) -> set[str]:
        """The funds with cached closes but not one adjusted close: cached before adjusted closes were
        kept (or from a source without them), so their whole history is asked again."""
        if self._rows is not None:
            rows = self._rows.groupby("symbol")["adj_close"].count()
            lacking = {str(symbol) for symbol, count in rows.items() if count == 0}
        else:
            found = self.db.execute(
                "SELECT symbol FROM closes GROUP BY symbol HAVING COUNT(adj_close) = 0"
            ).fetchall()
            lacking = {row[0] for row in found}
        return {symbol for symbol in lacking if symbol in FUND_SYMBOLS}

    def latest_day(self) -> date | None:
        """The newest close both indices have (None until both have one): what freshness is judged on,
        so one index lagging a day is stale, not hidden behind the other's newer close."""
        days = self.latest_days()
        if not all(s in days for s in INDEX_SYMBOLS):
            return None
        return min(days[s] for s in INDEX_SYMBOLS)

    def snapshot(self, as_of: date | None = None) -> MarketSnapshot:
        import pandas as pd

        if self._rows is not None:
            rows = self._rows
            long = rows if as_of is None else rows[rows["day"] <= as_of.isoformat()]
        else:
            day_filter = "" if as_of is None else " WHERE day <= ?"
            params = [] if as_of is None else [as_of.isoformat()]
            with reading(self.db) as conn:
                long = pd.read_sql_query(
                    "SELECT symbol, day, close, adj_close FROM closes" + day_filter, conn, params=params
                )
        adjusted = pd.DataFrame(dtype="float64")
        if long.empty:
            closes = pd.DataFrame(dtype="float64")
        else:
            closes = long.pivot(index="day", columns="symbol", values="close").astype("float64")
            closes.index = pd.to_datetime(closes.index)
            closes.index.name = None
            closes.columns.name = None
            closes = closes.sort_index()
            # Rows written before the plausibility guard existed may hold a 0 or a negative price.
            closes = closes.where(closes.gt(0) & closes.lt(float("inf")))
            funds = long[long["adj_close"].notna()]
            if not funds.empty:
                adjusted = funds.pivot(index="day", columns="symbol", values="adj_close").astype("float64")
                adjusted.index = pd.to_datetime(adjusted.index)
                adjusted = adjusted.reindex(index=closes.index)
                adjusted.columns.name = None
                adjusted = adjusted.where(adjusted.gt(0) & adjusted.lt(float("inf")))
        quotes = {
            row["symbol"]: Quote(
                row["symbol"], row["price"], datetime.fromisoformat(row["time"]), row["previous_close"]
            )
            for row in self.db.query("SELECT * FROM quotes")
            if row["price"] is not None and row["price"] > 0
        }
        with reading(self.db) as conn:
            funds = pd.read_sql_query(
                "SELECT symbol, as_of, expense_ratio, total_assets, price_to_book, source, fetched_at, "
                "price_to_earnings FROM fund_facts",
                conn,
            )
        funds["as_of"] = pd.to_datetime(funds["as_of"]).dt.date
        newest = self.last_refresh("prices", ok=True)
        failed = self.last_refresh("prices")
        return MarketSnapshot(
            closes=closes,
            quotes=quotes,
            funds=funds,
            source=str(newest["source"]) if newest else None,
            fetched_at=datetime.fromisoformat(str(newest["at"])) if newest else None,
            last_error=str(failed.get("reason") or failed["detail"]) if failed and not failed["ok"] else None,
            held=self.held_values(as_of),
            adjusted=adjusted,
        )
