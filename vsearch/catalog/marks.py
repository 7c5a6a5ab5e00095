"""Investigators' marks on search results behind their own small interface."""

from __future__ import annotations

import time
from collections.abc import Sequence

from vsearch.catalog.engine import SqlEngine
from vsearch.catalog.records import Mark


class MarkBook(SqlEngine):
    """Marks ("same" / "different" person) over the catalog's SQL engine; kept even when their sighting goes."""

    def add_marks(self, marks: Sequence[Mark]) -> None:
        """Store marks in one transaction, stamped with the current time (a sighting's marks are kept even if the
        sighting is later deleted: they are a record of what an investigator decided)."""
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT INTO search_marks (ts, sighting_id, mark, query_sha256, marked_by) VALUES (?, ?, ?, ?, ?)",
                [(now, m.sighting_id, m.mark, m.query_sha256, m.marked_by) for m in marks],
            )

    def marks(self, sighting_id: int | None = None, limit: int = 1000) -> list[Mark]:
        """Marks newest first, of one sighting or of all."""
        where, args = ("WHERE sighting_id=?", (sighting_id,)) if sighting_id is not None else ("", ())
        rows = self._q(
            f"SELECT sighting_id, mark, query_sha256, marked_by, ts FROM search_marks {where} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        return [Mark(r[0], r[1], r[2], r[3], r[4]) for r in rows]
