"""Cases: an investigator's confirmed clips and sightings of one person, and the person's route across cameras.

A case item must be something the catalog can vouch for: a clip id names a stored track and a span of it that
holds stored sightings; a sighting id names a stored sighting. Both are resolved here, once, into where and when
the item is (camera, absolute start and end), so the route and the evidence export never re-derive them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vsearch.catalog import CameraInfo, Case, CaseItem, Catalog, NewCaseItem
from vsearch.clips import check_clip_id, clip_id_for_sighting, parse_clip_id
from vsearch.config import Settings
from vsearch.errors import InputError, NotFoundError
from vsearch.types import ts_to_iso

MAX_NAME = 200
MAX_NOTES = 20_000
MAX_ITEMS_PER_CALL = 500
SIGHTING_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only ('²' is a digit to str.isdigit); fits SQLite


def check_text(what: str, value: str, lines: bool = False) -> None:
    """Refuse control characters (ESC, NUL, C1 controls...): stored, they would reach an investigator's terminal
    or a report raw (an OSC sequence rewrites a terminal's title or links). Notes (`lines`) may hold newlines and
    tabs."""
    allowed = "\n\t" if lines else ""
    bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in allowed), None)
    if bad is not None:
        raise InputError(f"{what} may not hold control character U+{ord(bad):04X} (at {value.index(bad)})")


def check_case_text(name: str | None, notes: str | None) -> None:
    """Refuse an empty or over-long case name, over-long notes, and control characters in either."""
    if name is not None and not (name.strip() and len(name) <= MAX_NAME):
        raise InputError(f"a case name must have 1 to {MAX_NAME} characters, got {len(name.strip())}")
    if notes is not None and len(notes) > MAX_NOTES:
        raise InputError(f"case notes may have at most {MAX_NOTES} characters, got {len(notes)}")
    if name is not None:
        check_text("a case name", name)
    if notes is not None:
        check_text("case notes", notes, lines=True)


def resolve_item(
    catalog: Catalog, ref: str, settings: Settings, query_sha256: str | None = None,
    search_filters: dict[str, Any] | None = None, note: str = "",
) -> NewCaseItem:  # fmt: skip
    """A clip id ('3-12-45000-61500') or a sighting id ('1234') -> a case item the catalog vouches for.

    Raises InputError for text that is neither, NotFoundError for an id the catalog does not hold or a span that
    is not one of its clips.
    """
    ref = ref.strip()
    filters = json.dumps(search_filters, sort_keys=True) if search_filters is not None else None
    if query_sha256 is not None and not (len(query_sha256) == 64 and all(c in "0123456789abcdef" for c in query_sha256)):
        raise InputError(f"expected a query image sha256 as 64 lowercase hex digits, got {query_sha256!r}")
    if SIGHTING_ID.fullmatch(ref):
        s = catalog.sighting(int(ref))
        return NewCaseItem(
            "sighting", str(s.id), s.camera_id, s.video_id, s.track_id, s.ts_s, s.ts_s, s.pts_s, s.pts_s, s.id,
            query_sha256, filters, note,
        )  # fmt: skip
    video_id, track_id, p0, p1 = parse_clip_id(ref)
    video = catalog.video(video_id)
    check_clip_id(catalog, ref, settings)  # exactly a clip search would give: not a span made up around a track
    held = catalog.track_sightings(video_id, track_id, p0 - 1e-3, p1 + 1e-3)
    best = held[len(held) // 2]  # the middle sighting represents the clip
    start = video.start_ts_s
    return NewCaseItem(
        "clip", ref, video.camera_id, video_id, track_id, start + p0, start + p1, p0, p1, best.id, query_sha256,
        filters, note,
    )  # fmt: skip


def clip_id_of(item: CaseItem, catalog: Catalog, settings: Settings) -> str:
    """The clip that shows a case item: the item itself, or the clip around a sighting."""
    if item.kind == "clip":
        return item.ref
    return clip_id_for_sighting(catalog, catalog.sighting(item.sighting_id), settings)


# -- route -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stop:
    """A continuous stay on one camera: confirmed items of one camera merged while they overlap or touch."""

    camera_id: str
    start_ts_s: float
    end_ts_s: float
    items: tuple[int, ...]  # case item ids

    @property
    def duration_s(self) -> float:
        """Seconds on this camera."""
        return self.end_ts_s - self.start_ts_s


@dataclass(frozen=True)
class Move:
    """What happened between two consecutive stops: a gap on one camera, or a transit between two cameras."""

    kind: str  # "gap" (same camera) or "transit" (another camera)
    from_camera: str
    to_camera: str
    from_ts_s: float
    to_ts_s: float

    @property
    def duration_s(self) -> float:
        """Seconds between the two stops."""
        return self.to_ts_s - self.from_ts_s  # negative when two cameras saw the person at once (overlapping views)


@dataclass(frozen=True)
class Route:
    """A person's route: stops in time order, the moves between them, and the time spent per camera."""

    stops: list[Stop]
    moves: list[Move]
    per_camera_s: dict[str, float]
    cameras: dict[str, CameraInfo]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: stops and moves with ISO times and durations, time per camera, camera metadata."""
        return {
            "stops": [
                {**asdict(s), "items": list(s.items), "start": ts_to_iso(s.start_ts_s), "end": ts_to_iso(s.end_ts_s),
                 "duration_s": round(s.duration_s, 3)}
                for s in self.stops
            ],
            "moves": [
                {**asdict(m), "from": ts_to_iso(m.from_ts_s), "to": ts_to_iso(m.to_ts_s), "duration_s": round(m.duration_s, 3)}
                for m in self.moves
            ],
            "per_camera_s": {k: round(v, 3) for k, v in self.per_camera_s.items()},
            "cameras": {k: asdict(v) for k, v in self.cameras.items()},
        }  # fmt: skip

    def to_csv(self) -> str:
        """One row per stop: order, camera, name, coordinates, start, end, duration, and the move that led there."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["order", "camera_id", "camera_name", "lat", "lon", "start", "end", "duration_s",
                    "arrived_by", "from_camera", "move_s", "items"])  # fmt: skip
        for i, s in enumerate(self.stops):
            cam = self.cameras.get(s.camera_id, CameraInfo(s.camera_id))
            m = self.moves[i - 1] if i else None
            w.writerow([
                i + 1, csv_cell(s.camera_id), csv_cell(cam.name or ""), "" if cam.lat is None else cam.lat,
                "" if cam.lon is None else cam.lon, ts_to_iso(s.start_ts_s), ts_to_iso(s.end_ts_s), f"{s.duration_s:.3f}",
                m.kind if m else "start", csv_cell(m.from_camera) if m else "", f"{m.duration_s:.3f}" if m else "",
                " ".join(map(str, s.items)),
            ])  # fmt: skip
        return out.getvalue()

    def to_geojson(self) -> dict[str, Any]:
        """A FeatureCollection: one Point per camera with coordinates (time spent, visits) and one LineString of
        the route through them in time order. Coordinates are [lon, lat] (RFC 7946)."""
        located = {k: c for k, c in self.cameras.items() if c.lat is not None and c.lon is not None}
        visits: dict[str, int] = defaultdict(int)
        for s in self.stops:
            visits[s.camera_id] += 1
        features: list[dict[str, Any]] = [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
             "properties": {"camera_id": k, "name": c.name, "time_s": round(self.per_camera_s.get(k, 0.0), 3),
                            "visits": visits.get(k, 0)}}
            for k, c in sorted(located.items()) if k in visits
        ]  # fmt: skip
        path = [s for s in self.stops if s.camera_id in located]
        if len(path) >= 2:
            features.append({
                "type": "Feature",
                "geometry": {"type": "LineString",
                             "coordinates": [[located[s.camera_id].lon, located[s.camera_id].lat] for s in path]},
                "properties": {"kind": "route", "cameras": [s.camera_id for s in path],
                               "times": [ts_to_iso(s.start_ts_s) for s in path]},
            })  # fmt: skip
        return {"type": "FeatureCollection", "features": features}


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet will not run: a leading =, +, -, @, tab or CR gets a quote (OWASP CSV injection).
    Only names and ids go through here; the numbers this module writes stay numbers."""
    return f"'{text}" if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def build_route(items: Sequence[CaseItem], cameras: dict[str, CameraInfo], merge_gap_s: float = 0.0) -> Route:
    """The route of confirmed items: merged into stops per camera (items of one camera that overlap, or are at
    most `merge_gap_s` apart, form one stop), in time order, with the moves between stops."""
    ordered = sorted(items, key=lambda i: (i.start_ts_s, i.end_ts_s, i.id))
    stops: list[Stop] = []
    for it in ordered:
        last = stops[-1] if stops else None
        if last and last.camera_id == it.camera_id and it.start_ts_s <= last.end_ts_s + merge_gap_s:
            stops[-1] = Stop(last.camera_id, last.start_ts_s, max(last.end_ts_s, it.end_ts_s), (*last.items, it.id))
        else:
            stops.append(Stop(it.camera_id, it.start_ts_s, it.end_ts_s, (it.id,)))
    moves = [
        Move("gap" if a.camera_id == b.camera_id else "transit", a.camera_id, b.camera_id, a.end_ts_s, b.start_ts_s)
        for a, b in zip(stops, stops[1:])
    ]
    per_camera: dict[str, float] = defaultdict(float)
    for s in stops:
        per_camera[s.camera_id] += s.duration_s
    used = {s.camera_id for s in stops}
    return Route(stops, moves, dict(per_camera), {k: cameras.get(k, CameraInfo(k)) for k in sorted(used)})


def check_camera_info(camera_id: str, name: str | None, lat: float | None, lon: float | None) -> CameraInfo:
    """Validate camera metadata at the edge: a non-empty id, finite coordinates in range, both or neither."""
    import math

    if not camera_id.strip() or len(camera_id) > 200:
        raise InputError(f"expected a camera id of 1 to 200 characters, got {camera_id!r}")
    if (lat is None) != (lon is None):
        raise InputError("give both --lat and --lon, or neither")
    if lat is not None and lon is not None:
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            raise InputError(f"latitude must be a number in [-90, 90], got {lat}")
        if not (math.isfinite(lon) and -180 <= lon <= 180):
            raise InputError(f"longitude must be a number in [-180, 180], got {lon}")
    if name is not None and len(name) > MAX_NAME:
        raise InputError(f"a camera name may have at most {MAX_NAME} characters")
    check_text("a camera id", camera_id)
    if name is not None:
        check_text("a camera name", name)
    return CameraInfo(camera_id, name or None, lat, lon)


def items_for_ids(catalog: Catalog, case_id: int, item_ids: Sequence[int] | None) -> list[CaseItem]:
    """A case's items, or only those named (an unknown id is a NotFoundError)."""
    items = catalog.case_items(case_id)
    if not item_ids:
        return items
    by_id = {i.id: i for i in items}
    missing = [i for i in item_ids if i not in by_id]
    if missing:
        raise NotFoundError(f"case {case_id} has no item(s) {', '.join(map(str, missing))}")
    return [by_id[i] for i in item_ids]


def case_to_dict(case: Case, items: Sequence[CaseItem]) -> dict[str, Any]:
    """A case and its items as plain JSON-able data with ISO times (the CLI's --json and the API's body)."""
    return {
        "id": case.id, "name": case.name, "notes": case.notes, "created_by": case.created_by,
        "created_at": ts_to_iso(case.created_at), "updated_at": ts_to_iso(case.updated_at), "items_count": len(items),
        "items": [
            {**asdict(i), "start": ts_to_iso(i.start_ts_s), "end": ts_to_iso(i.end_ts_s), "added_at": ts_to_iso(i.added_at),
             "search_filters": json.loads(i.search_filters) if i.search_filters else None}
            for i in items
        ],
    }  # fmt: skip
