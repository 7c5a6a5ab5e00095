"""Per-sighting attribute probabilities behind their own small interface (vsearch.attributes computes them).

Each row keeps its sighting's time and camera beside the probabilities, so a description search applies its time
window and cameras and ranks by the joint probability in one statement over this table (its (model, ts) and
(model, camera_id, ts) indexes), never over the sightings' rows with their embeddings, and never a top-k filtered
afterwards. Rows go when their sighting goes (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vsearch.attributes import COLUMNS
from vsearch.catalog.engine import Db, SqlEngine, window_conditions

_COLS = ", ".join(f"p_{c}" for c in COLUMNS)
_INSERT = (
    f"INSERT INTO sighting_attributes (sighting_id, model, camera_id, ts, {_COLS})"
    f" VALUES (?, ?, ?, ?, {', '.join('?' * len(COLUMNS))})"
    f" ON CONFLICT (sighting_id) DO UPDATE SET model = excluded.model, "
    + ", ".join(f"p_{c} = excluded.p_{c}" for c in COLUMNS)
)


@dataclass(frozen=True)
class Term:
    """One factor of a joint probability: P(any of `columns`) (a sum within one group), or 1 - P(`columns[0]`)
    when `negated` (a binary attribute's "no": male, no backpack)."""

    columns: tuple[str, ...]
    negated: bool = False

    def sql(self) -> str:
        bad = [c for c in self.columns if c not in COLUMNS]
        if bad or not self.columns or (self.negated and len(self.columns) != 1):
            raise ValueError(f"bad attribute term {self}")  # callers build terms from COLUMNS only
        total = " + ".join(f"p_{c}" for c in self.columns)
        return f"(1 - {total})" if self.negated else f"({total})"


@dataclass(frozen=True)
class AttributeFilter:
    """Only sightings whose joint probability of `terms` under attribute model `model` is at least `min_p` (an
    image search with a description: vsearch.search)."""

    model: str
    terms: tuple[Term, ...]
    min_p: float


# (sighting id, camera id, time (epoch s): the row's own filter columns; probabilities in COLUMNS order)
AttributeRow = tuple[int, str, float, NDArray[np.float32]]


class AttributeBook(SqlEngine):
    """Attribute probabilities per sighting, over the catalog's SQL engine."""

    def put_attributes(self, model: str, rows: Sequence[AttributeRow], db: Db | None = None) -> None:
        """Store (or replace) the rows' probabilities; joins `db`'s transaction when given."""
        values = [(i, model, cam, ts_s, *(float(p) for p in probs)) for i, cam, ts_s, probs in rows]
        if db is not None:
            db.executemany(_INSERT, values)
            return
        with self._tx() as tx:
            tx.executemany(_INSERT, values)

    def attributes(self, ids: Sequence[int]) -> dict[int, tuple[str, NDArray[np.float32]]]:
        """(model, probabilities) of each of the sightings in `ids` that has them."""
        rows = self._select_ids(f"SELECT sighting_id, model, {_COLS} FROM sighting_attributes WHERE {{}}", "sighting_id",
                                [int(i) for i in ids])  # fmt: skip
        return {int(r[0]): (str(r[1]), np.array(r[2:], np.float32)) for r in rows}

    def without_attributes(self, model: str, after_id: int, limit: int) -> list[tuple[int, str, float, str, str]]:
        """Up to `limit` sightings after `after_id` (id order) with no probabilities from `model`:
        (id, camera_id, ts, embedder, thumb_path)."""
        rows = self._q(
            "SELECT s.id, s.camera_id, s.ts, s.embedder, s.thumb_path FROM sightings s"
            " LEFT JOIN sighting_attributes a ON a.sighting_id = s.id AND a.model = ?"
            " WHERE s.id > ? AND a.sighting_id IS NULL ORDER BY s.id LIMIT ?", (model, after_id, limit),
        )  # fmt: skip
        return [(int(r[0]), str(r[1]), float(r[2]), str(r[3]), str(r[4])) for r in rows]

    def count_attributes(self, model: str) -> int:
        return int(self._q("SELECT COUNT(*) FROM sighting_attributes WHERE model = ?", (model,))[0][0])

    def attribute_ids(
        self, f: AttributeFilter, from_ts_s: float | None, to_ts_s: float | None, cameras: Sequence[str] | None
    ) -> NDArray[np.int64]:
        """Ids of the sightings inside the time window and cameras whose joint probability passes `f`: one
        statement over the attribute table (its (model, ts) and (model, camera_id, ts) indexes)."""
        window, window_args = window_conditions(from_ts_s, to_ts_s, cameras)
        joint = " * ".join(t.sql() for t in f.terms) or "1.0"
        cond = " AND ".join(["model = ?", *window, f"{joint} >= ?"])
        rows = self._q(f"SELECT sighting_id FROM sighting_attributes WHERE {cond}", [f.model, *window_args, f.min_p])
        return np.array(sorted(int(r[0]) for r in rows), np.int64)

    def find_by_attributes(
        self,
        model: str,
        terms: Sequence[Term],
        from_ts_s: float | None,
        to_ts_s: float | None,
        cameras: Sequence[str] | None,
        limit: int,
    ) -> tuple[list[tuple[int, float]], int]:
        """([(sighting id, joint probability)] best first, up to `limit`; how many sightings passed the filters).

        The filters are in the statement's WHERE, the ranking in its ORDER BY: the best `limit` inside the window
        and cameras, whatever the rest of the collection holds."""
        window, window_args = window_conditions(from_ts_s, to_ts_s, cameras)
        where: list[str] = ["model = ?", *window]
        args: list[object] = [model, *window_args]
        joint = " * ".join(t.sql() for t in terms) or "1.0"
        cond = " AND ".join(where)
        rows = self._q(
            f"SELECT sighting_id, {joint} AS p FROM sighting_attributes WHERE {cond} ORDER BY p DESC, sighting_id"
            " LIMIT ?", [*args, limit],
        )  # fmt: skip
        count = int(self._q(f"SELECT COUNT(*) FROM sighting_attributes WHERE {cond}", args)[0][0])
        return [(int(r[0]), float(r[1])) for r in rows], count
