"""Cases behind their own small interface: investigations and the confirmed items they hold.

Every change to a case is one transaction. The catalog (base.py) is a CaseBook; a caller that needs only cases
can ask for a CaseBook.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from vsearch.catalog.engine import Db, SqlEngine
from vsearch.catalog.records import Case, CaseItem, NewCaseItem
from vsearch.errors import InputError, NotFoundError


class CaseBook(SqlEngine):
    """Cases and their items, over the catalog's SQL engine."""

    def create_case(self, name: str, notes: str, by: str) -> Case:
        """Open a case (one transaction)."""
        now = time.time()
        with self._tx() as db:
            case_id = self._insert_id(
                db,
                "INSERT INTO cases (name, notes, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (name, notes, by, now, now),
            )
        return self.case(case_id)

    _CASE_SQL = (
        "SELECT c.id, c.name, c.notes, c.created_by, c.created_at, c.updated_at, COUNT(i.id), c.closed_at, c.close_reason"
        " FROM cases c"
        " LEFT JOIN case_items i ON i.case_id = c.id"
    )

    def case(self, case_id: int) -> Case:
        """A case with its item count (NotFoundError if unknown)."""
        rows = self._q(f"{self._CASE_SQL} WHERE c.id = ? GROUP BY c.id", (case_id,))
        if not rows:
            raise NotFoundError(f"no case with id {case_id}")
        return Case(*rows[0])

    def cases(self) -> list[Case]:
        """Every case, oldest first."""
        return [Case(*r) for r in self._q(f"{self._CASE_SQL} GROUP BY c.id ORDER BY c.id")]

    def cases_of(self, who: str) -> list[Case]:
        """The cases `who` owns (opened) or is a member of, oldest first."""
        return [Case(*r) for r in self._q(
            f"{self._CASE_SQL} WHERE c.created_by = ? OR c.id IN (SELECT case_id FROM case_members WHERE member = ?)"
            " GROUP BY c.id ORDER BY c.id", (who, who))]  # fmt: skip

    def close_case(self, case_id: int, by: str, reason: str) -> Case:
        """Close a case (one transaction; NotFoundError if unknown, InputError if already closed): its hold on
        footage ends, the retention run after it may delete what it held."""
        with self._tx() as db:
            self._touch_case(db, case_id)
            if db.execute("UPDATE cases SET closed_at=?, closed_by=?, close_reason=? WHERE id=? AND closed_at IS NULL",
                          (time.time(), by, reason, case_id)).rowcount != 1:  # fmt: skip
                raise InputError(f"case {case_id} is already closed")
        return self.case(case_id)

    def case_members(self, case_id: int) -> list[str]:
        """The names a case is shared with (its owner, `created_by`, is not listed), sorted."""
        return [r[0] for r in self._q("SELECT member FROM case_members WHERE case_id=? ORDER BY member", (case_id,))]

    def add_case_member(self, case_id: int, member: str, by: str) -> bool:
        """Share a case with `member` (one transaction); False if it already was."""
        with self._tx() as db:
            self._touch_case(db, case_id)
            cur = db.execute(
                "INSERT INTO case_members (case_id, member, added_by, added_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (case_id, member) DO NOTHING", (case_id, member, by, time.time()))  # fmt: skip
            return bool(cur.rowcount == 1)

    def remove_case_member(self, case_id: int, member: str) -> None:
        """Stop sharing a case with `member` (NotFoundError if it was not shared with them)."""
        with self._tx() as db:
            self._touch_case(db, case_id)
            if db.execute("DELETE FROM case_members WHERE case_id=? AND member=?", (case_id, member)).rowcount != 1:
                raise NotFoundError(f"case {case_id} is not shared with {member!r}")

    def update_case(self, case_id: int, name: str | None, notes: str | None) -> Case:
        """Change a case's name and/or notes (None: unchanged), in one transaction."""
        with self._tx() as db:
            self._touch_case(db, case_id)
            if name is not None:
                db.execute("UPDATE cases SET name=? WHERE id=?", (name, case_id))
            if notes is not None:
                db.execute("UPDATE cases SET notes=? WHERE id=?", (notes, case_id))
        return self.case(case_id)

    @staticmethod
    def _touch_case(db: Db, case_id: int) -> None:
        """Inside a transaction: the case must exist; mark it changed now."""
        if db.execute("UPDATE cases SET updated_at=? WHERE id=?", (time.time(), case_id)).rowcount != 1:
            raise NotFoundError(f"no case with id {case_id}")

    def add_case_items(self, case_id: int, items: Sequence[NewCaseItem], by: str) -> tuple[list[CaseItem], set[int]]:
        """Add items to a case in one transaction; an item already in the case is kept as it was. Returns the
        case's items that correspond to `items`, in the order of `items`, and the ids of those this call added."""
        now = time.time()
        inserted: set[tuple[str, str]] = set()
        with self._tx() as db:
            self._touch_case(db, case_id)
            for it in items:
                cur = db.execute(
                    "INSERT INTO case_items (case_id, kind, ref, camera_id, video_id, track_id, start_ts,"
                    " end_ts, start_pts, end_pts, sighting_id, query_sha256, search_filters, note, added_by, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, kind, ref) DO NOTHING",
                    (case_id, it.kind, it.ref, it.camera_id, it.video_id, it.track_id, it.start_ts_s, it.end_ts_s,
                     it.start_pts_s, it.end_pts_s, it.sighting_id, it.query_sha256, it.search_filters, it.note, by,
                     now),
                )  # fmt: skip
                if cur.rowcount == 1:  # 0: the case already held it (ON CONFLICT DO NOTHING)
                    inserted.add((it.kind, it.ref))
        held = {(i.kind, i.ref): i for i in self.case_items(case_id)}
        ordered = [held[(it.kind, it.ref)] for it in items]
        return ordered, {i.id for i in ordered if (i.kind, i.ref) in inserted}

    def remove_case_item(self, case_id: int, item_id: int) -> CaseItem:
        """Remove one item of a case (NotFoundError if the case has no such item), in one transaction; returns it."""
        item = next((i for i in self.case_items(case_id) if i.id == item_id), None)
        with self._tx() as db:
            self._touch_case(db, case_id)
            if item is None or db.execute("DELETE FROM case_items WHERE case_id=? AND id=?", (case_id, item_id)).rowcount != 1:
                raise NotFoundError(f"case {case_id} has no item {item_id}")
        return item

    def case_items(self, case_id: int) -> list[CaseItem]:
        """A case's items in time order (NotFoundError for an unknown case)."""
        self.case(case_id)
        rows = self._q(
            "SELECT id, case_id, kind, ref, camera_id, video_id, track_id, start_ts, end_ts, start_pts, end_pts,"
            " sighting_id, query_sha256, search_filters, note, added_by, added_at FROM case_items WHERE case_id=?"
            " ORDER BY start_ts, id",
            (case_id,),
        )
        return [CaseItem(*r) for r in rows]
