"""Evidence export of a case as a verifiable ZIP, and its verification.

The ZIP holds, for every confirmed item, the clip (the MP4 exactly as the API serves it), the full frame with the
box drawn and the stored person crop; the query images of the searches that found them; `manifest.json`; and
`manifest.json.sha256`. The manifest lists every other file with its sha256 and size, every clip's camera, absolute
start and end, source video (path, sha256 recorded at ingest and re-hashed at export) and frame range in the
source, the searches (filters, query hash) with their audit entries, and the software and model versions.

The ZIP is written deterministically (sorted names, fixed timestamps and permissions), so the same case exported
twice differs only in the manifest's export stamp. Clip rendering is checked at export: each clip is rendered a
second time into a scratch folder and its sha256 compared with the served file's; the manifest records the result.

`manifest.json.sha256` inside the ZIP catches accidental damage to the manifest. Deliberate tampering that also
rewrites that file is caught only against the manifest sha256 recorded outside the ZIP: the export's audit entry
and the receipt printed to the investigator (`verify_zip(..., expect_manifest_sha256=...)`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsearch import __version__
from vsearch.audit import AuditLog
from vsearch.cases import clip_id_of
from vsearch.catalog import CaseItem, Catalog
from vsearch.clips import (
    annotate_sighting,
    cut_clip,
    interpolated_box,
    render_clip,
    render_thumbnail,
    sighting_frame,
    write_jpeg,
)
from vsearch.config import Settings
from vsearch.errors import InputError, NotFoundError, TooLargeError
from vsearch.redact import (
    BODY_BLOCKS,
    DETECT_CONF,
    HEAD_BLOCKS,
    MIN_PERSON_PX,
    Box,
    Redactor,
    check_mode,
    person_detect,
)
from vsearch.scratch import scratch_dir
from vsearch.types import ts_to_iso
from vsearch.weights import YOLO11N_POSE, sha256_file

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    from numpy.typing import NDArray

    from vsearch.detect import PersonDetector

FORMAT = "vsearch-evidence/1"
MANIFEST = "manifest.json"
MANIFEST_SHA = "manifest.json.sha256"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a ZIP can hold: no export clock leaks into the file bytes
QUERY_EXT = {b"\xff\xd8\xff": ".jpg", b"\x89PNG": ".png", b"BM": ".bmp", b"RIFF": ".webp"}


def queries_dir(settings: Settings) -> Path:
    """Where query images that led to case items are kept, named by their sha256."""
    return settings.data_dir / "queries"


def keep_query_image(settings: Settings, data: bytes) -> str:
    """Store a query image (content-addressed, once) so that exports can include it; returns its sha256."""
    ext = next((e for magic, e in QUERY_EXT.items() if data.startswith(magic)), None)
    if ext is None:
        raise InputError(f"expected a query image (JPEG, PNG, BMP or WebP), got {len(data)} bytes starting {data[:8]!r}")
    sha = hashlib.sha256(data).hexdigest()
    folder = queries_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{sha}{ext}"
    if not out.exists():
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    return sha


def _query_file(settings: Settings, sha: str) -> Path | None:
    return next(iter(sorted(queries_dir(settings).glob(f"{sha}.*"))), None) if queries_dir(settings).exists() else None


def software_versions() -> dict[str, str]:
    """The software that produced the files: vsearch, Python, PyAV and its FFmpeg, OpenCV, NumPy."""
    import av
    import cv2
    import numpy as np

    libav = ".".join(map(str, av.library_versions.get("libavcodec", ())))
    return {
        "vsearch": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
        "pyav": av.__version__, "libavcodec": libav, "opencv": cv2.__version__, "numpy": np.__version__,
    }  # fmt: skip


def model_hashes(catalog: Catalog, settings: Settings) -> dict[str, Any]:
    """The detector's and the embedders' weights (name and sha256) behind the catalog's sightings."""
    from vsearch.embed import WEIGHTS as weights
    embedders = {}
    for name in catalog.embedders():
        w = weights.get(name)
        v = None if w else catalog.embedder_version(name)  # an adapted version (vsearch adapt)
        embedders[name] = (
            {"weights": w.name, "sha256": w.sha256} if w
            else {"weights": v.path, "sha256": v.sha256, "adapted_from": v.base} if v
            else {"weights": None, "sha256": None, "note": "no weights (hand-crafted)"}
        )
    return {
        "detector": {"weights": YOLO11N_POSE.name, "sha256": YOLO11N_POSE.sha256, "backend": settings.detector_backend},
        "embedders": embedders,
    }


def _frame_range(p0: float, p1: float, fps: float, frame_count: int, pad_s: float) -> tuple[int, int]:
    # the same arithmetic as clips.render_clip: the frames it cuts, padding included
    import math

    return max(0, int((p0 - pad_s) * fps)), min(frame_count - 1, int(math.ceil((p1 + pad_s) * fps)))


class _Redaction:
    """An export's redaction (vsearch.redact): the mode, the redacted files under `work`, what each covered, and
    each clip's per-frame covers, so that its check render replays them instead of detecting again."""

    def __init__(self, mode: str, detector: PersonDetector | None, work: Path) -> None:
        self.mode = mode
        self.detect = person_detect(detector) if detector is not None else None
        self.work = work
        self.stats: dict[str, dict[str, Any]] = {}
        self._clips: dict[str, Redactor] = {}

    def manifest(self, context: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "none":
            return {"mode": "none", "note": "unredacted: every person as recorded", "role": context.get("role"),
                    "reason": context.get("reason")}  # fmt: skip
        return {
            "mode": self.mode,
            "how": ("every person but the item's own track pixelated" + (" (whole body)" if self.mode == "bystanders"
                    else " (head, from pose keypoints or the top of the box)") + ": the catalog's boxes of the video's"
                    " other tracks (interpolated, padded) and the person detector run on every exported frame; the"
                    " subject (the detection matching the item's stored box) is never covered where it stands in front"),
            "detector": {"weights": YOLO11N_POSE.name, "sha256": YOLO11N_POSE.sha256, "min_score": DETECT_CONF,
                         "min_height_px": MIN_PERSON_PX},
            "blocks_per_box_height": BODY_BLOCKS if self.mode == "bystanders" else HEAD_BLOCKS,
            "crops": "cut from the redacted frame at the sighting's box (not the stored crop)",
            "original_footage": "only read: the source videos' sha256 are in each clip's source_video",
        }  # fmt: skip

    def _redactor(self) -> Redactor:
        assert self.detect is not None
        return Redactor(self.detect, self.mode)

    def clip_filter(self, catalog: Catalog, settings: Settings, tag: str):  # type: ignore[no-untyped-def]
        """cut_clip's frame filter: each frame redacted (its covers kept for the check render)."""
        red = self._clips[tag] = self._redactor()

        def f(frames: Iterator[tuple[int, NDArray[np.uint8]]], video_id: int, track_id: int, a: int, b: int) -> Iterator[tuple[int, NDArray[np.uint8]]]:
            subject_at, others_at = _track_boxes_at(catalog, settings, video_id, track_id, a, b)
            yield from red.frames(frames, subject_at, others_at)
            self.stats.setdefault(tag, {})["clip"] = red.stats.to_dict()

        return f

    def replay(self, tag: str):  # type: ignore[no-untyped-def]
        """cut_clip's frame filter for the check render: the first render's covers, applied again."""
        red = self._clips.pop(tag)
        return lambda frames, *_: red.replay(frames)

    def frame_and_crop(self, catalog: Catalog, settings: Settings, sighting: Any, tag: str) -> tuple[Path, Path]:
        """The sighting's full frame redacted and annotated, and its crop cut from the redacted frame."""
        assert self.detect is not None
        video = catalog.video(sighting.video_id)
        i = round(sighting.pts_s * video.fps)
        _, others_at = _track_boxes_at(catalog, settings, video.id, sighting.track_id, i, i)
        red = self._redactor()
        source = sighting_frame(catalog, sighting)
        img = red.redact(source, sighting.xyxy, others_at(i), self.detect([source])[0])
        x1, y1, x2, y2 = (max(0, int(round(v))) for v in sighting.xyxy)
        crop = write_jpeg(img[y1:y2, x1:x2].copy(), self.work / f"{tag}-crop.jpg", 92)
        annotate_sighting(img, sighting)
        self.stats.setdefault(tag, {})["frame"] = red.stats.to_dict()
        return write_jpeg(img, self.work / f"{tag}-frame.jpg"), crop


def _track_boxes_at(catalog: Catalog, settings: Settings, video_id: int, track_id: int, a: int, b: int):  # type: ignore[no-untyped-def]
    """(subject_at, others_at): the subject track's stored box at a frame index of the video, and the other
    tracks' stored boxes there, interpolated between their samples (frames a..b)."""
    video = catalog.video(video_id)
    fps, gap = video.fps, settings.clip_gap_s
    subject = catalog.track_boxes(video_id, track_id)
    others: dict[int, list[tuple[float, tuple[float, float, float, float], float]]] = {}
    for tid, pts, xyxy, conf in catalog.boxes_between(video_id, a / fps - gap, b / fps + gap):
        if tid != track_id:
            others.setdefault(tid, []).append((pts, xyxy, conf))

    def subject_at(idx: int) -> Box | None:
        box = interpolated_box(subject, idx / fps, gap)
        return None if box is None else (box[0], box[1], box[2], box[3])

    def others_at(idx: int) -> list[Box]:
        found = (interpolated_box(bs, idx / fps, gap) for bs in others.values())
        return [(b[0], b[1], b[2], b[3]) for b in found if b is not None]

    return subject_at, others_at


@dataclass
class ExportReport:
    """What an export wrote: the ZIP, the manifest's sha256 (keep it: it proves the manifest later), counts."""

    path: Path
    manifest_sha256: str
    files: int
    clips: int
    deterministic: bool
    notes: list[str] = field(default_factory=list)


def export_case(
    catalog: Catalog, settings: Settings, case_id: int, out: Path, by: str, audit: AuditLog,
    context: dict[str, Any] | None = None, check_rendering: bool = True, redact: str = "none",
    detector: PersonDetector | None = None,
) -> ExportReport:  # fmt: skip
    """Write the case's evidence ZIP to `out` (atomically) and the export to the audit log (with `context`: the
    caller's role, address): the entry commits before the ZIP takes its name, so a crash between leaves an entry
    and a temp file, never an export without its entry.

    `redact` (vsearch.redact): "bystanders" or "faces" cover everyone but each item's subject in its clip, frame
    and crop, detected with `detector`; "none" exports the footage as served (who may, and why, is the caller's
    check: vsearch.casework)."""
    check_mode(redact)
    case = catalog.case(case_id)
    items = catalog.case_items(case_id)
    if not items:
        raise InputError(f"case {case_id} ({case.name!r}) has no confirmed items to export")
    if redact != "none" and detector is None:
        raise InputError(f"a {redact!r} redaction needs the person detector")
    with scratch_dir(settings, "redact") as work:  # the redacted files, until the ZIP holds them
        return _export(catalog, settings, case, items, out, by, audit, context or {}, check_rendering,
                       _Redaction(redact, detector, work))  # fmt: skip


def _export(
    catalog: Catalog, settings: Settings, case: Any, items: list[CaseItem], out: Path, by: str, audit: AuditLog,
    context: dict[str, Any], check_rendering: bool, redaction: _Redaction,
) -> ExportReport:  # fmt: skip
    case_id = case.id
    members: dict[str, Path] = {}
    clips: list[dict[str, Any]] = []
    notes: list[str] = []
    deterministic = True
    source_now: dict[str, str] = {}
    for it in items:
        entry, item_files, same = _clip_entry(catalog, settings, it, check_rendering, source_now, redaction)
        members.update(item_files)
        clips.append(entry)
        src = entry["source_video"]
        if src["sha256_at_export"] != src["sha256_at_ingest"]:
            notes.append(f"clip {entry['clip_id']}: the source video {src['path']} no longer has the sha256 it had at ingest")
        if same is False:
            deterministic = False
            notes.append(f"clip {entry['clip_id']}: a second render gave different bytes ({entry['rerender_sha256']})")
    searches = _searches(settings, items, audit, members, notes)
    files = [
        {"path": name, "sha256": sha256_file(p), "bytes": p.stat().st_size} for name, p in sorted(members.items())
    ]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "case": {"id": case.id, "name": case.name, "notes": case.notes, "created_by": case.created_by,
                 "created_at": ts_to_iso(case.created_at)},
        "exported_by": by,
        "software": software_versions(),
        "models": model_hashes(catalog, settings),
        "redaction": redaction.manifest(context),
        "rendering": {
            "checked": check_rendering, "deterministic": deterministic if check_rendering else None,
            "how": "each clip rendered again from its source into a scratch folder at export; sha256 compared with the"
                   " served MP4 (redacted: with the per-frame covers of the first render, so detection runs once)",
            "encoder": "libx264 crf 23 preset veryfast, yuv420p, +faststart (vsearch.video.write_mp4)",
        },
        "clips": clips,
        "searches": searches,
        "files": files,
        "notes": notes,
    }  # fmt: skip
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    tmp = _write_zip(out, members, manifest_bytes, manifest_sha)
    try:
        audit.append({
            **context, "action": "case.export", "case_id": case_id, "key_name": by, "file": str(out), "redact": redaction.mode,
            "manifest_sha256": manifest_sha, "zip_sha256": sha256_file(tmp), "clip_ids": [c["clip_id"] for c in clips],
            "deterministic": manifest["rendering"]["deterministic"],
        })  # fmt: skip
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return ExportReport(out, manifest_sha, len(files), len(clips), deterministic, notes)


def _clip_entry(
    catalog: Catalog, settings: Settings, it: CaseItem, check_rendering: bool, source_now: dict[str, str],
    redaction: _Redaction,
) -> tuple[dict[str, Any], dict[str, Path], bool | None]:
    """One item's manifest entry and its files (clip, frame, crop); whether a second render matched."""
    clip_id = clip_id_of(it, catalog, settings)
    sighting = catalog.sighting(it.sighting_id)
    tag = f"item{it.id:05d}-{clip_id}"
    if redaction.mode == "none":
        mp4 = render_clip(catalog, clip_id, settings)
        frame = render_thumbnail(catalog, sighting, settings)
        crop = settings.data_dir / sighting.thumb_path
        if not crop.exists():
            raise NotFoundError(f"crop of sighting {sighting.id} is missing on disk ({crop})")
    else:
        mp4 = cut_clip(catalog, clip_id, settings, redaction.work / f"{tag}.mp4", redaction.clip_filter(catalog, settings, tag))
        frame, crop = redaction.frame_and_crop(catalog, settings, sighting, tag)
    video = catalog.video(it.video_id)
    src = Path(video.path)
    if video.path not in source_now:
        from vsearch.ingest import source_sha256

        source_now[video.path] = source_sha256(src) if src.exists() else "missing"
    from vsearch.clips import parse_clip_id

    _, _, p0, p1 = parse_clip_id(clip_id)
    a, b = _frame_range(p0, p1, video.fps, video.frame_count, settings.clip_pad_s)
    files = {f"clips/{tag}.mp4": mp4, f"frames/{tag}.jpg": frame, f"crops/{tag}.jpg": crop}
    same: bool | None = None
    rerender = None
    if check_rendering:
        with scratch_dir(settings, "rerender") as tmp:  # under the data dir; a killed export's is swept later
            if redaction.mode == "none":
                again = render_clip(catalog, clip_id, settings.model_copy(update={"data_dir": tmp}))
            else:
                again = cut_clip(catalog, clip_id, settings, tmp / "again.mp4", redaction.replay(tag))
            rerender = sha256_file(again)
        same = rerender == sha256_file(mp4)
    entry = {
        "item_id": it.id, "kind": it.kind, "ref": it.ref, "clip_id": clip_id, "camera_id": it.camera_id,
        "track_id": it.track_id, "sighting_id": sighting.id, "start": ts_to_iso(it.start_ts_s),
        "end": ts_to_iso(it.end_ts_s), "start_ts_s": it.start_ts_s, "end_ts_s": it.end_ts_s,
        "clip_start": ts_to_iso(video.start_ts_s + a / video.fps), "clip_end": ts_to_iso(video.start_ts_s + b / video.fps),
        "source_video": {"video_id": video.id, "path": video.path, "sha256_at_ingest": video.sha256,
                         "sha256_at_export": source_now[video.path], "fps": video.fps, "start": ts_to_iso(video.start_ts_s)},
        "source_frames": {"first": a, "last": b, "pts_s": [round(a / video.fps, 3), round(b / video.fps, 3)]},
        "added_by": it.added_by, "added_at": ts_to_iso(it.added_at), "note": it.note,
        "query_sha256": it.query_sha256, "files": {"clip": f"clips/{tag}.mp4", "frame": f"frames/{tag}.jpg",
                                                     "crop": f"crops/{tag}.jpg"},
        "rerender_sha256": rerender, "rerender_matches": same,
        "redaction": redaction.stats.get(tag),
    }  # fmt: skip
    return entry, files, same


def _searches(
    settings: Settings, items: list[CaseItem], audit: AuditLog, members: dict[str, Path], notes: list[str]
) -> list[dict[str, Any]]:
    """The searches that found the items: query image (added to `members`), filters, audit entries."""
    by_query: dict[str, set[str]] = {}
    for it in items:
        if it.query_sha256:
            by_query.setdefault(it.query_sha256, set()).add(it.search_filters or "null")
    entries = audit.with_queries(set(by_query))
    out = []
    for sha in sorted(by_query):
        f = _query_file(settings, sha)
        if f is None:
            notes.append(f"query image {sha} was not kept on this server; only its hash is recorded")
        else:
            members[f"queries/{sha}{f.suffix}"] = f
        mine = [e for e in entries if e.get("query_sha256") == sha]
        # searches say "search" (API searches audited before the service wrote them say nothing); case changes name theirs
        if not [e for e in mine if e.get("action", "search") == "search"]:
            notes.append(f"query {sha[:12]}…: no search with this image is in the audit log")
        out.append({
            "query_sha256": sha, "query_file": f"queries/{sha}{f.suffix}" if f else None,
            "filters": [json.loads(x) for x in sorted(by_query[sha])],
            "audit_entries": mine,  # the searches with this image and the case changes that cite it
        })  # fmt: skip
    return out


def _write_zip(out: Path, members: dict[str, Path], manifest: bytes, manifest_sha: str) -> Path:
    """Sorted names, fixed times and modes; media stored, text deflated; written to a temp file beside `out`,
    returned (the caller renames it once the export is audited)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Path | bytes] = {**members, MANIFEST: manifest, MANIFEST_SHA: f"{manifest_sha}  {MANIFEST}\n".encode()}
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for name in sorted(payload):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            data = payload[name]
            raw = data if isinstance(data, bytes) else data.read_bytes()
            info.compress_type = zipfile.ZIP_DEFLATED if name.endswith((".json", ".sha256")) else zipfile.ZIP_STORED
            z.writestr(info, raw)
    return tmp


# -- verify ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyLimits:
    """What `verify_zip` agrees to check. Past any of them it refuses (TooLargeError) before inflating a byte, so
    time and memory stay bounded whatever the upload: every entry is streamed through sha256 in 1 MiB pieces, and
    only the manifest (at most `max_manifest_bytes`) is held whole. A vsearch export stores its media uncompressed,
    so a high compression ratio on a large entry means a ZIP bomb, not evidence."""

    max_entries: int = 30_000  # 3 files per item + query images: 10,000 items
    max_central_dir_bytes: int = 8 * 1024**2  # the ZIP's own index, parsed whole by zipfile
    max_entry_bytes: int = 4 * 1024**3  # uncompressed, as declared in the ZIP (the stream is capped to it)
    max_total_bytes: int = 5 * 1024**3
    max_ratio: float = 100.0  # uncompressed / compressed ...
    ratio_floor_bytes: int = 1024**2  # ... for entries larger than this
    max_manifest_bytes: int = 16 * 1024**2


LIMITS = VerifyLimits()
CHUNK = 1 << 20


@dataclass
class VerifyReport:
    """The outcome of checking an evidence ZIP: every problem names its file."""

    ok: bool
    changed: list[str]
    missing: list[str]
    added: list[str]
    problems: list[str]  # one line per problem, for people
    files_checked: int
    manifest_sha256: str | None


def _check_central_directory(path: Path, limits: VerifyLimits) -> None:
    """Refuse a ZIP whose index alone is too large, before zipfile parses it into one object per entry."""
    with open(path, "rb") as f:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # the end record (zip64 too); None: not a ZIP
    if end is None:
        return  # zipfile.ZipFile reports it
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > limits.max_entries or size > limits.max_central_dir_bytes:
        raise TooLargeError(
            f"the ZIP declares {entries} entries ({size} bytes of index); an evidence ZIP may have at most"
            f" {limits.max_entries} entries and {limits.max_central_dir_bytes} bytes of index"
        )


def _check_declared(infos: list[zipfile.ZipInfo], limits: VerifyLimits) -> None:
    """Entry count, sizes and compression ratios as the ZIP declares them (the stream never exceeds them)."""
    if len(infos) > limits.max_entries:
        raise TooLargeError(f"the ZIP has {len(infos)} entries; an evidence ZIP may have at most {limits.max_entries}")
    total = 0
    for i in infos:
        total += i.file_size
        if i.file_size > limits.max_entry_bytes:
            raise TooLargeError(f"entry {i.filename!r} inflates to {i.file_size} bytes; the limit is {limits.max_entry_bytes}")
        if i.file_size > limits.ratio_floor_bytes and i.file_size > limits.max_ratio * max(i.compress_size, 1):
            raise TooLargeError(
                f"entry {i.filename!r} inflates {i.file_size / max(i.compress_size, 1):.0f}x ({i.compress_size} -> "
                f"{i.file_size} bytes); the limit is {limits.max_ratio:.0f}x (a vsearch export stores its media)"
            )
        if i.filename == MANIFEST and i.file_size > limits.max_manifest_bytes:
            raise TooLargeError(f"{MANIFEST} has {i.file_size} bytes; the limit is {limits.max_manifest_bytes}")
    if total > limits.max_total_bytes:
        raise TooLargeError(f"the ZIP inflates to {total} bytes in all; the limit is {limits.max_total_bytes}")


def _hash_entry(z: zipfile.ZipFile, info: zipfile.ZipInfo, keep: int) -> tuple[str, int, bytes]:
    """sha256 and size of one entry, streamed; its first `keep` bytes (the manifest and its hash file)."""
    h, size, kept = hashlib.sha256(), 0, bytearray()
    with z.open(info) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
            if len(kept) < keep:
                kept += chunk[: keep - len(kept)]
    return h.hexdigest(), size, bytes(kept)


def verify_zip(path: Path, expect_manifest_sha256: str | None = None, limits: VerifyLimits = LIMITS) -> VerifyReport:
    """Recompute every hash of an evidence ZIP against its manifest: changed, missing and added files, a changed
    manifest (against its in-ZIP hash and, if given, the sha256 recorded at export).

    Raises TooLargeError past `limits` and InputError for a manifest nested too deeply to be one."""
    changed: list[str] = []
    missing: list[str] = []
    added: list[str] = []
    problems: list[str] = []

    def fail(kind: list[str], name: str, why: str) -> None:
        kind.append(name)
        problems.append(f"{why}: {name}")

    try:
        _check_central_directory(path, limits)
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:  # no path in the text: the API's is a temp file of the server's
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return VerifyReport(False, [], [], [], [f"not a readable ZIP ({reason})"], 0, None)
    hashed: dict[str, tuple[str, int]] = {}
    kept: dict[str, bytes] = {}
    with z:
        infos = z.infolist()
        _check_declared(infos, limits)
        names = Counter(i.filename for i in infos)
        for info in infos:
            n = info.filename
            keep = limits.max_manifest_bytes if n in (MANIFEST, MANIFEST_SHA) else 0
            try:
                sha, size, head = _hash_entry(z, info, keep)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as e:
                hashed.pop(n, None)  # a flipped bit fails the ZIP's CRC; an encrypted or unknown method is unreadable
                fail(changed, n, f"changed (unreadable: {e})")
                continue
            hashed[n] = (sha, size)
            if keep:
                kept[n] = head
    for n in sorted(n for n, count in names.items() if count > 1):
        fail(added, n, "added (a second entry with the same name)")
    if MANIFEST not in names:
        fail(missing, MANIFEST, "missing")
        return VerifyReport(False, changed, missing, added, problems, 0, None)
    manifest_bytes = kept.get(MANIFEST)
    manifest_sha = hashed[MANIFEST][0] if MANIFEST in hashed else None
    recorded = kept.get(MANIFEST_SHA)
    if MANIFEST_SHA not in names:
        fail(missing, MANIFEST_SHA, "missing")
    elif recorded is not None and manifest_sha is not None and recorded.decode(errors="replace").split()[:1] != [manifest_sha]:
        fail(changed, MANIFEST, "changed (its sha256 differs from manifest.json.sha256)")
    if expect_manifest_sha256 and manifest_sha is not None and manifest_sha != expect_manifest_sha256.lower():
        fail(changed, MANIFEST, f"changed (sha256 {manifest_sha} is not the {expect_manifest_sha256} recorded at export)")
    try:
        manifest = json.loads(manifest_bytes or b"")
        listed = {f["path"]: f for f in manifest["files"]}
        if not all(isinstance(k, str) and isinstance(f, dict) for k, f in listed.items()):
            raise TypeError("a file entry without a path")
    except RecursionError:
        raise InputError(f"{MANIFEST} is nested too deeply to be a vsearch manifest") from None
    except (ValueError, KeyError, TypeError) as e:
        if MANIFEST not in changed:
            fail(changed, MANIFEST, f"changed (not a vsearch manifest: {e})")
        return VerifyReport(False, changed, missing, added, problems, 0, manifest_sha)
    for name, f in sorted(listed.items()):
        if name not in names:
            fail(missing, name, "missing")
            continue
        if name not in hashed:
            continue  # already reported as changed
        sha, size = hashed[name]
        if sha != f.get("sha256") or size != f.get("bytes"):
            fail(changed, name, f"changed (sha256 {sha[:16]}…, {size} bytes; manifest: {str(f.get('sha256'))[:16]}…, {f.get('bytes')} bytes)")
    for name in sorted(set(names) - set(listed) - {MANIFEST, MANIFEST_SHA}):
        fail(added, name, "added (not in the manifest)")
    ok = not problems
    return VerifyReport(ok, changed, missing, added, problems, len(listed), manifest_sha)
