"""Case work as the CLI and the API do it: validated at the edge, stored in the catalog, every change audited.

`VSearch.casework` holds one `Casework`; the CLI and the API call it and do nothing else of their own, so that a
change made from either lands in the same catalog and the same audit log (vsearch.audit). Each change and its
audit entry are one catalog transaction: both commit, or neither.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsearch.audit import AuditLog
from vsearch.cases import (
    MAX_ITEMS_PER_CALL,
    MAX_NAME,
    Route,
    build_route,
    check_camera_info,
    check_case_text,
    check_text,
    items_for_ids,
    resolve_item,
)  # fmt: skip
from vsearch.catalog import CameraInfo, Case, CaseItem, Catalog
from vsearch.companions import MAX_DIST_H, MAX_DT_S, Companion, companions_of_items
from vsearch.config import Settings
from vsearch.embed import Thresholds, thresholds
from vsearch.errors import InputError, NotFoundError, PermissionDeniedError
from vsearch.evidence import ExportReport, export_case, keep_query_image
from vsearch.identities import Identity, identities_in_window
from vsearch.redact import DEFAULT_MODE, check_mode

if TYPE_CHECKING:
    from vsearch.detect import PersonDetector

OPERATOR_ROLES = ("admin", "cli", None)
MAX_REASON = 500


def check_cameras(catalog: Catalog, cameras: Sequence[str]) -> None:
    """NotFoundError naming an unknown camera id and the known ones: a typo is never answered as "not seen"."""
    known = catalog.camera_info()  # the cameras table: grows with cameras, not with sightings
    for c in cameras:
        if c not in known:
            listed = ", ".join(sorted(known)) or "none yet"
            raise NotFoundError(f"unknown camera {c!r}; the catalog's cameras are: {listed}")


class Casework:
    """Cases, camera metadata, routes and evidence exports over one catalog and one audit log."""

    def __init__(self, catalog: Catalog, settings: Settings, audit: AuditLog, detector: PersonDetector | None = None) -> None:
        self.catalog = catalog
        self.settings = settings
        self.audit = audit
        self.detector = detector  # redacted exports detect the people to cover (loaded on first use)

    # -- access: a case is seen by its owner (who opened it), its members and operators; to anyone else it does
    # not exist (the NotFoundError of an unknown id, so ids cannot be probed). Operators: the API's admins, the CLI
    # (run on the machine that holds the data dir) and in-process callers that give no role.
    @staticmethod
    def is_operator(context: dict[str, Any] | None) -> bool:
        """Whether the caller sees and may change every case."""
        return (context or {}).get("role") in OPERATOR_ROLES

    def _case(self, case_id: int, by: str | None, context: dict[str, Any] | None, owner: bool = False) -> Case:
        """The case if the caller may see it (`owner`: may share it), else NotFoundError as for an unknown id."""
        case = self.catalog.case(case_id)
        if self.is_operator(context) or by == case.created_by:
            return case
        if by is None or by not in self.catalog.case_members(case_id):
            raise NotFoundError(f"no case with id {case_id}")
        if owner:
            raise PermissionDeniedError(f"only the owner of case {case_id} ({case.created_by}) or an admin may share it")
        return case

    def purpose(self, case_id: int | None, reason: str | None, by: str | None = None,
                context: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """Why the caller looks (a search, a clip view, an export): the audit fields `case_id` (a case the caller
        may see, else NotFoundError) and/or `reason` (one line of free text). InputError when neither is given and
        settings.require_reason is set."""
        fields: dict[str, Any] = {}
        if reason is not None and reason.strip():
            if len(reason) > MAX_REASON:
                raise InputError(f"a reason is at most {MAX_REASON} characters, got {len(reason)}")
            check_text("a reason", reason)
            fields["reason"] = reason.strip()
        if case_id is not None:
            self._case(case_id, by, context)
            fields["case_id"] = case_id
        if not fields and self.settings.require_reason:
            raise InputError("a reason is required (VSEARCH_REQUIRE_REASON=1): give the case id or a reason")
        return fields

    # -- cases ---------------------------------------------------------------------------------------------
    def create(self, name: str, notes: str, by: str, context: dict[str, Any] | None = None) -> Case:
        """Open a case (audited)."""
        check_case_text(name, notes)
        with self.audit.change_by("case.create", by, context) as entry:
            case = self.catalog.create_case(name.strip(), notes, by)
            entry.update(case_id=case.id, name=case.name)
        return case

    def update(self, case_id: int, name: str | None, notes: str | None, by: str, context: dict[str, Any] | None = None) -> Case:
        """Rename a case or change its notes (audited)."""
        check_case_text(name, notes)
        if name is None and notes is None:
            return self._case(case_id, by, context)  # nothing to change: no change, no audit line
        with self.audit.change_by("case.update", by, context, case_id=case_id) as entry:
            before = self._case(case_id, by, context)
            case = self.catalog.update_case(case_id, name.strip() if name is not None else None, notes)
            entry.update(old={"name": before.name, "notes": before.notes}, new={"name": case.name, "notes": case.notes})
        return case

    def cases(self, by: str | None = None, context: dict[str, Any] | None = None) -> list[Case]:
        """The cases the caller may see (operators: every case), oldest first."""
        return self.catalog.cases() if self.is_operator(context) or by is None else self.catalog.cases_of(by)

    def case(self, case_id: int, by: str | None = None, context: dict[str, Any] | None = None) -> tuple[Case, list[CaseItem]]:
        """A case and its items in time order."""
        return self._case(case_id, by, context), self.catalog.case_items(case_id)

    def members(self, case_id: int, by: str | None = None, context: dict[str, Any] | None = None) -> list[str]:
        """Whom a case is shared with (besides its owner)."""
        self._case(case_id, by, context)
        return self.catalog.case_members(case_id)

    def share(self, case_id: int, member: str, by: str, context: dict[str, Any] | None = None) -> list[str]:
        """Share a case with another investigator (its owner or an operator; audited); returns the members."""
        if not member.strip() or len(member) > MAX_NAME:
            raise InputError(f"expected a member name of 1 to {MAX_NAME} characters, got {member!r}")
        check_text("a member name", member)
        with self.audit.change_by("case.share", by, context, case_id=case_id, member=member) as entry:
            self._case(case_id, by, context, owner=True)
            if not self.catalog.add_case_member(case_id, member, by):
                entry.drop()  # already a member: nothing changed
        return self.catalog.case_members(case_id)

    def unshare(self, case_id: int, member: str, by: str, context: dict[str, Any] | None = None) -> list[str]:
        """Stop sharing a case with a member (its owner or an operator; audited); returns the members left."""
        with self.audit.change_by("case.unshare", by, context, case_id=case_id, member=member):
            self._case(case_id, by, context, owner=True)
            self.catalog.remove_case_member(case_id, member)
        return self.catalog.case_members(case_id)

    def add(
        self, case_id: int, refs: Sequence[str], by: str, query_image: bytes | None = None,
        query_sha256: str | None = None, filters: dict[str, Any] | None = None, note: str = "",
        context: dict[str, Any] | None = None,
    ) -> list[CaseItem]:  # fmt: skip
        """Add confirmed clips or sightings to a case, in one transaction (audited). `query_image` (kept, so the
        export can include it) or `query_sha256` name the search that found them; `filters` are its filters."""
        if not refs:
            raise InputError("give at least one clip or sighting id to add")
        if len(refs) > MAX_ITEMS_PER_CALL:
            raise InputError(f"at most {MAX_ITEMS_PER_CALL} items per call, got {len(refs)}")
        if self._case(case_id, by, context).closed_at is not None:  # an unknown (or unseen) case before the items
            raise InputError(f"case {case_id} is closed: it takes no more items")
        if query_image is not None:
            sha = keep_query_image(self.settings, query_image)
            if query_sha256 is not None and query_sha256 != sha:
                raise InputError(f"the query image's sha256 is {sha}, not the {query_sha256} given")
            query_sha256 = sha
        check_text("an item note", note, lines=True)
        new = [resolve_item(self.catalog, r, self.settings, query_sha256, filters, note) for r in dict.fromkeys(refs)]
        with self.audit.change_by("case.add", by, context, case_id=case_id) as entry:
            items, added = self.catalog.add_case_items(case_id, new, by)
            # refs and item_ids line up (input order, repeats dropped); added_item_ids are those this call put in
            # the case, already_in_case_item_ids those it held before (of identical concurrent adds, one adds)
            entry.update(refs=[i.ref for i in items], item_ids=[i.id for i in items],
                         added_item_ids=[i.id for i in items if i.id in added],
                         already_in_case_item_ids=[i.id for i in items if i.id not in added], query_sha256=query_sha256)  # fmt: skip
        return items

    def close(self, case_id: int, reason: str, by: str, context: dict[str, Any] | None = None) -> Case:
        """Close a case, giving the reason (audited): its hold on footage ends, and the next retention run deletes
        what only it kept. A closed case takes no more items."""
        if not reason.strip() or len(reason) > MAX_REASON:
            raise InputError(f"closing a case needs a reason of 1 to {MAX_REASON} characters")
        check_text("a reason", reason)
        with self.audit.change_by("case.close", by, context, case_id=case_id, reason=reason.strip()):
            self._case(case_id, by, context)
            return self.catalog.close_case(case_id, by, reason.strip())

    def remove(self, case_id: int, item_id: int, by: str, context: dict[str, Any] | None = None) -> None:
        """Remove one item from a case (audited)."""
        with self.audit.change_by("case.remove", by, context, case_id=case_id, item_id=item_id) as entry:
            self._case(case_id, by, context)
            item = self.catalog.remove_case_item(case_id, item_id)
            entry.update(kind=item.kind, ref=item.ref)

    def export(self, case_id: int, out: Path, by: str, context: dict[str, Any] | None = None, check_rendering: bool = True,
               reason: str | None = None, redact: str = DEFAULT_MODE) -> ExportReport:  # fmt: skip
        """Write the case's evidence ZIP (the export is audited with the manifest's sha256, the redaction mode and
        the `reason` given, before the ZIP takes its name: there is never an export without its entry). Its case
        is its purpose. `redact` (vsearch.redact): "bystanders" (default) or "faces" cover everyone but each
        item's subject; "none" needs an operator (an admin, the CLI) and a stated reason (PermissionDeniedError,
        InputError)."""
        check_mode(redact)
        if redact == "none":
            if not self.is_operator(context):
                role = (context or {}).get("role")
                raise PermissionDeniedError(f"an unredacted export (redact none) needs an admin; this caller is {role!r}")
            if reason is None or not reason.strip():
                raise InputError("an unredacted export (redact none) needs a stated reason (--reason / reason=): it is audited")
        context = {**(context or {}), **self.purpose(case_id, reason, by, context)}
        self.audit.ready()  # refused now, not after the rendering, if the audit log cannot be written
        detector = self.detector
        if redact != "none" and detector is None:
            from vsearch.detect import PersonDetector

            detector = self.detector = PersonDetector(self.settings)
        return export_case(self.catalog, self.settings, case_id, out, by, self.audit, context, check_rendering, redact, detector)

    # -- route and cameras ----------------------------------------------------------------------------------------
    def route(
        self, case_id: int, item_ids: Sequence[int] | None = None, merge_gap_s: float = 0.0, by: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Route:  # fmt: skip
        """The person's route over a case's items (or some of them)."""
        self._case(case_id, by, context)
        return build_route(items_for_ids(self.catalog, case_id, item_ids), self.catalog.camera_info(), merge_gap_s)

    def set_camera(
        self, camera_id: str, name: str | None, lat: float | None, lon: float | None, by: str,
        context: dict[str, Any] | None = None,
    ) -> CameraInfo:  # fmt: skip
        """Set a camera's display name and coordinates (audited)."""
        checked = check_camera_info(camera_id, name, lat, lon)
        check_cameras(self.catalog, [camera_id])  # a typo must not create a camera
        with self.audit.change_by("camera.set", by, context, camera_id=camera_id) as entry:
            info = self.catalog.set_camera_info(checked)
            entry.update(name=info.name, lat=info.lat, lon=info.lon)
        return info

    def set_retention(self, camera_id: str, days: float | None, by: str, context: dict[str, Any] | None = None) -> None:
        """Set a camera's own retention in days (None: back to VSEARCH_RETENTION_DAYS), audited."""
        if days is not None and not (math.isfinite(days) and 0 < days <= 365_000):
            raise InputError(f"retention days must be a number in (0, 365000], got {days}")
        check_cameras(self.catalog, [camera_id])
        with self.audit.change_by("camera.retention", by, context, camera_id=camera_id, retention_days=days):
            self.catalog.set_camera_retention(camera_id, days)

    def camera_info(self) -> dict[str, CameraInfo]:
        """Every camera's metadata."""
        return self.catalog.camera_info()

    # -- companions and identities ------------------------------------------------------------------------------
    def thresholds(self) -> Thresholds:
        """The similarity thresholds measured for the embedder whose vectors the catalog holds."""
        stored = self.catalog.embedders()
        return thresholds(stored[0] if len(stored) == 1 else self.settings.embedder)

    def companions(
        self, case_id: int, item_ids: Sequence[int] | None = None, max_dt_s: float = MAX_DT_S,
        max_dist_h: float = MAX_DIST_H, threshold: float | None = None, by: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[Companion]:  # fmt: skip
        """Who the case's person was with: people close to them in their confirmed stays, grouped by appearance
        (`threshold` None: the one measured for the catalog's embedder)."""
        self._case(case_id, by, context)
        threshold = self.thresholds().companion if threshold is None else threshold
        _check_range("max_dt_s", max_dt_s, 0, 60)
        _check_range("max_dist_h", max_dist_h, 0, 20)
        _check_range("threshold", threshold, -1, 1)
        return companions_of_items(self.catalog, items_for_ids(self.catalog, case_id, item_ids), max_dt_s, max_dist_h, threshold)

    def identities(
        self, from_ts_s: float, to_ts_s: float, cameras: Sequence[str] | None = None, threshold: float | None = None
    ) -> list[Identity]:
        """The people seen in a time window: tracks grouped across cameras into putative identities (`threshold`
        None: the one measured for the catalog's embedder). An unknown camera is a NotFoundError naming it."""
        if not from_ts_s < to_ts_s:
            raise InputError("the window must end after it starts")
        check_cameras(self.catalog, cameras or ())
        threshold = self.thresholds().group if threshold is None else threshold
        _check_range("threshold", threshold, -1, 1)
        return identities_in_window(self.catalog, from_ts_s, to_ts_s, cameras, threshold)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(f"{name} must be a number in [{lo}, {hi}], got {value}")

