"""The rules in memory: one numpy array per rules-frame column, with room to grow, and its snapshot file.

The rules room (``alerts.store.rules``) keeps its rules here rather than in a DataFrame it replaces on every change: a refresh writes
the judged state back by position into these arrays, a finished rule stays in place (inactive: evaluation
only judges ACTIVE rows) until the next checkpoint compacts it away, and a new rule is written into spare
room at the end. ``frame`` is a DataFrame over views of the arrays (``alerts.evaluate.RULE_COLUMNS``,
indexed by ``rule_id``), built again only when rows come or go.

The snapshot is the same columns in one ``.npz`` file beside the database, written at a checkpoint and
stamped with the rules version it matches (``alerts.store.rules``): loading it costs a read of the file instead
of a million SQLite rows turned into Python objects. It is private to its owner like the database, and
anything wrong with it (stale, truncated, corrupt) makes ``read_snapshot`` return None, never a wrong
table.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alerts.evaluate import ACTIVE, RULE_COLUMNS

_ARRAY_COLUMNS = [name for name in RULE_COLUMNS if name != "key"]
SNAPSHOT_FORMAT = 1


class RuleTable:
    """Rule rows in ``rule_id`` order, active and finished, as columns of ``RULE_COLUMNS`` dtypes.

    ``key`` is held as codes into ``key_names`` (sorted, as a frame's categories are)."""

    def __init__(
        self,
        ids: np.ndarray,
        columns: dict[str, np.ndarray],
        key_codes: np.ndarray,
        key_names: list[str],
        size: int,
    ) -> None:
        self._ids = ids
        self._columns = columns
        self._key_codes = key_codes
        self.key_names = key_names
        self.size = size
        self._frame: pd.DataFrame | None = None
        self._active: pd.DataFrame | None = None
        self._keys: set[str] | None = None
        self.finished = int(np.count_nonzero(self.column("status") != ACTIVE))

    # --- building ----------------------------------------------------------------------------------------

    @classmethod
    def empty(cls, capacity: int = 0) -> RuleTable:
        capacity = _room(capacity)
        columns = {name: np.empty(capacity, dtype=RULE_COLUMNS[name]) for name in _ARRAY_COLUMNS}
        return cls(np.empty(capacity, np.int64), columns, np.empty(capacity, np.int32), [], 0)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> RuleTable:
        table = cls.empty(len(frame))
        table.append(frame)
        return table

    def append(self, rows: pd.DataFrame) -> None:
        """Add a rules frame's rows, whose rule ids are all above those held (new rules are)."""
        keys = pd.Categorical(rows["key"].astype(str)) if len(rows) else pd.Categorical([])
        self.append_columns(
            rows.index.to_numpy(dtype=np.int64),
            {name: rows[name].to_numpy() for name in _ARRAY_COLUMNS},
            keys,
        )

    def append_columns(self, ids: np.ndarray, columns: dict[str, np.ndarray], keys: Any) -> None:
        """``append`` from arrays: ``columns`` of every column but ``key``, ``keys`` a categorical."""
        count = len(ids)
        if count == 0:
            return
        if (self.size and ids[0] <= self._ids[self.size - 1]) or np.any(np.diff(ids) <= 0):
            raise ValueError("rows must come in rule_id order, after every rule held")
        self._reserve(self.size + count)
        end = self.size + count
        self._ids[self.size : end] = ids
        for name in _ARRAY_COLUMNS:
            self._columns[name][self.size : end] = columns[name]
        codes = np.asarray(keys.codes)
        if (codes < 0).any():
            raise ValueError("every rule row needs a key")
        self._key_codes[self.size : end] = self._codes_for([str(k) for k in keys.categories])[codes]
        self.size = end
        self.finished += int(np.count_nonzero(columns["status"] != ACTIVE))
        self.changed_rows()

    def _codes_for(self, names: list[str]) -> np.ndarray:
        """The code of each of ``names`` in ``key_names``, adding (and re-coding for) names not seen yet."""
        new = sorted(set(names) - set(self.key_names))
        if new:
            merged = sorted([*self.key_names, *new])
            remap = np.array([merged.index(name) for name in self.key_names], dtype=np.int32)
            if self.size:
                self._key_codes[: self.size] = remap[self._key_codes[: self.size]]
            self.key_names = merged
        lookup = {name: code for code, name in enumerate(self.key_names)}
        return np.array([lookup[name] for name in names], dtype=np.int32)

    def _reserve(self, needed: int) -> None:
        if needed <= len(self._ids):
            return
        capacity = _room(max(needed, len(self._ids) * 5 // 4))

        def grown(array: np.ndarray) -> np.ndarray:
            bigger = np.empty(capacity, dtype=array.dtype)
            bigger[: self.size] = array[: self.size]
            return bigger

        self._ids = grown(self._ids)
        self._key_codes = grown(self._key_codes)
        self._columns = {name: grown(array) for name, array in self._columns.items()}
        self._frame = None

    def keep(self, rows: np.ndarray) -> int:
        """Keep only the rows where ``rows`` (a mask over ``size`` rows) is True; returns how many went."""
        gone = self.size - int(np.count_nonzero(rows))
        if gone == 0:
            return 0
        kept = np.flatnonzero(rows)
        size = len(kept)
        self._ids[:size] = self._ids[kept]
        self._key_codes[:size] = self._key_codes[kept]
        for array in self._columns.values():
            array[:size] = array[kept]
        self.size = size
        self.finished = int(np.count_nonzero(self.column("status") != ACTIVE))
        self._forget_unused_keys()
        self.changed_rows()
        return gone

    def _forget_unused_keys(self) -> None:
        """Keep only the key names some row holds, as a table read afresh would."""
        used = np.bincount(self.key_codes, minlength=len(self.key_names)) > 0
        if used.all():
            return
        remap = np.cumsum(used, dtype=np.int32) - 1
        self._key_codes[: self.size] = remap[self.key_codes]
        self.key_names = [name for name, kept in zip(self.key_names, used.tolist(), strict=True) if kept]

    def compact(self) -> int:
        """Drop the finished rows (done, expired); returns how many."""
        return self.keep(self.column("status") == ACTIVE) if self.finished else 0

    # --- reading and writing -----------------------------------------------------------------------------

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self.size]

    def column(self, name: str) -> np.ndarray:
        """The writable array of ``name`` over the rows held (a view: writes land in the frame)."""
        return self._columns[name][: self.size]

    @property
    def key_codes(self) -> np.ndarray:
        return self._key_codes[: self.size]

    def positions(self, rule_ids: Any) -> np.ndarray:
        """Where each of ``rule_ids`` sits (-1: not held)."""
        ids = self.ids
        wanted = np.asarray(rule_ids, dtype=np.int64)
        at = np.searchsorted(ids, wanted)
        found = at < len(ids)
        found[found] = ids[at[found]] == wanted[found]
        return np.where(found, at, -1)

    def changed_rows(self) -> None:
        """Rows came or went, or a status changed: the frames and keys built from them are out of date."""
        self._frame = None
        self.changed_status()

    def changed_status(self, *, keys: bool = True) -> None:
        """Values changed in place: the copy of the active rows is out of date, and the watched keys too
        when a rule finished (``keys``)."""
        self._active = None
        if keys:
            self._keys = None

    @property
    def frame(self) -> pd.DataFrame:
        """Every row held, active or finished, as a rules frame over views of the arrays (not a copy:
        the store's writes show in it). Evaluation judges only its ACTIVE rows."""
        if self._frame is None:
            data: dict[str, Any] = {name: self.column(name) for name in RULE_COLUMNS if name != "key"}
            data["key"] = pd.Categorical.from_codes(
                self.key_codes, categories=pd.Index(self.key_names, dtype=object), validate=False
            )
            index = pd.Index(self.ids, name="rule_id", copy=False)
            self._frame = pd.DataFrame({n: data[n] for n in RULE_COLUMNS}, index=index, copy=False)
        return self._frame

    def active(self) -> pd.DataFrame:
        """The active rows only: ``frame`` itself while no row is finished, else a copy made once."""
        if not self.finished:
            return self.frame
        if self._active is None:
            active = self.frame[self.column("status") == ACTIVE].copy()
            active["key"] = active["key"].cat.remove_unused_categories()
            self._active = active
        return self._active

    def watched_keys(self) -> set[str]:
        """The keys some active rule judges."""
        if self._keys is None:
            codes = self.key_codes[self.column("status") == ACTIVE] if self.finished else self.key_codes
            counts = np.bincount(codes, minlength=len(self.key_names))
            self._keys = {self.key_names[code] for code in np.flatnonzero(counts)}
        return self._keys

    # --- the snapshot file -------------------------------------------------------------------------------

    def write_snapshot(self, path: Path, version: int) -> None:
        """Write the rows to ``path`` (owner-only), stamped with ``version``; atomically replaced."""
        partial = path.with_name(path.name + ".partial")
        arrays: dict[str, np.ndarray] = {name: self.column(name) for name in _ARRAY_COLUMNS}
        arrays["rule_id"] = self.ids
        arrays["key_codes"] = self.key_codes
        arrays["key_names"] = np.array(self.key_names, dtype=str)
        arrays["meta"] = np.array([SNAPSHOT_FORMAT, version, self.size], dtype=np.int64)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as out:
                np.savez(out, allow_pickle=False, **arrays)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def read_snapshot(path: Path, version: int, rows: int) -> RuleTable | None:
    """The table in ``path`` when it is whole and stamped with ``version`` and holds ``rows`` rows; None
    when it is missing, stale, truncated or corrupt (each array's CRC is checked as it is read)."""
    try:
        with path.open("rb") as file, np.load(file, allow_pickle=False) as stored:
            meta = stored["meta"]
            if meta.tolist() != [SNAPSHOT_FORMAT, version, rows]:
                return None
            table = RuleTable.empty(rows)
            for name in _ARRAY_COLUMNS:
                values = stored[name]
                if values.shape != (rows,) or values.dtype != RULE_COLUMNS[name]:
                    return None
                table._columns[name][:rows] = values
            ids, codes = stored["rule_id"], stored["key_codes"]
            names = [str(name) for name in stored["key_names"].tolist()]
            if ids.shape != (rows,) or codes.shape != (rows,):
                return None
            if rows and (np.any(np.diff(ids) <= 0) or codes.min() < 0 or codes.max() >= len(names)):
                return None
            if names != sorted(set(names)):
                return None
            table._ids[:rows] = ids
            table._key_codes[:rows] = codes
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    table.key_names = names
    table.size = rows
    table.finished = int(np.count_nonzero(table.column("status") != ACTIVE))
    return table


def _room(rows: int) -> int:
    """Capacity for ``rows``: some spare room, so rules added one by one rarely move the arrays."""
    return rows + max(1024, rows // 16)
