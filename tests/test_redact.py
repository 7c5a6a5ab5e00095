"""Redacted evidence exports (vsearch.redact, vsearch.evidence): a face recogniser that matches a bystander in an
unredacted export no longer matches after redaction, the subject is left as it was, the original footage is only
read; the unredacted export needs an admin and a reason, both audited; the manifest and verify.

Footage: MOT17-09 (1920x1080, a street with several people at once): dlib finds no usable face at the bundled
sample clip's 768x432, where visitors come one at a time. The frames are written as a video and catalogued
through the real store: the subject's track (GT id 1) and two other tracks are stored; the bystander whose face
is tested (GT id 19) is in no stored track, so only the detector run at export can find her.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import dataset, missing
from vsearch.config import Settings
from vsearch.errors import InputError, PermissionDeniedError
from vsearch.evidence import verify_zip
from vsearch.redact import Cover, apply_covers, head_box, plan_frame
from vsearch.types import Detections

SEQ = "mot17-mini/train/MOT17-09-FRCNN"
SUBJECT, STORED_OTHERS, BYSTANDER = 1, (21, 22), 19
START = 1_772_373_600.0  # 2026-03-01T14:00:00Z
REGION = (1400, 200, 1920, 800)  # where the bystander's face is looked for (x1, y1, x2, y2)
MATCH = 0.6  # dlib's face-recognition distance below which two faces are the same person (its documented threshold)


def _gt(seq: Path) -> dict[int, dict[int, tuple[float, float, float, float]]]:
    """{gt id: {frame index (0-based): xyxy}} of the pedestrians of the frames present."""
    out: dict[int, dict[int, tuple[float, float, float, float]]] = {}
    for line in (seq / "gt" / "gt.txt").read_text().split():
        f, i, x, y, w, h = (float(v) for v in line.split(",")[:6])
        out.setdefault(int(i), {})[int(f) - 1] = (x, y, x + w, y + h)
    return out


class Faces:
    """dlib's HOG face detector, 5-point shape predictor and ResNet face recogniser (CC0 weights of the
    face-recognition-models package)."""

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError:
            missing("dlib (pip install dlib-bin) is not installed")
        spec = importlib.util.find_spec("face_recognition_models")  # found, not imported: it needs pkg_resources
        if spec is None or not spec.submodule_search_locations:
            missing("face-recognition-models is not installed")
        models = Path(list(spec.submodule_search_locations)[0]) / "models"
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def find(self, img_bgr: np.ndarray, region: tuple[int, int, int, int]) -> list[tuple[object, np.ndarray]]:
        """(rectangle in `img_bgr`, 128-d descriptor) of every face found in `region` (x1, y1, x2, y2)."""
        x1, y1, x2, y2 = region
        rgb = np.ascontiguousarray(img_bgr[y1:y2, x1:x2, ::-1])
        out = []
        for r in self.detector(rgb, 1):
            out.append((self.dlib.rectangle(r.left() + x1, r.top() + y1, r.right() + x1, r.bottom() + y1), self._describe(rgb, r)))
        return out

    def describe_at(self, img_bgr: np.ndarray, rect: object) -> np.ndarray:
        """The descriptor of whatever is at `rect` (a face found in another image), found or not."""
        return self._describe(np.ascontiguousarray(img_bgr[:, :, ::-1]), rect)

    def _describe(self, rgb: np.ndarray, rect: object) -> np.ndarray:
        return np.asarray(self.net.compute_face_descriptor(rgb, self.shape(rgb, rect)))


@pytest.fixture(scope="module")
def faces() -> Faces:
    return Faces()


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A service over MOT17-09's frames as camera 'street', with a case holding the subject's sighting; yields
    (service, case id, video path, gt)."""
    from vsearch.catalog import Checkpoint, NewSighting
    from vsearch.service import VSearch
    from vsearch.video import write_mp4

    seq = dataset(SEQ)
    gt = _gt(seq)
    root = tmp_path_factory.mktemp("street")
    frames = [cv2.imread(str(p)) for p in sorted((seq / "img1").glob("*.jpg"))]
    video = root / "mot17-09.mp4"
    write_mp4(video, enumerate(frames), 30.0)
    svc = VSearch(Settings(data_dir=root / "data", embedder="hsv-parts"))
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    rec = svc.catalog.begin_video("street", str(video), sha, START, 30.0, len(frames), (1920, 1080), svc.embedder.name)
    (svc.settings.thumbs_dir / "street").mkdir(parents=True)
    rows, boxes = [], []
    for tid in (SUBJECT, *STORED_OTHERS):
        for i, box in sorted(gt[tid].items()):
            boxes.append((tid, i / 30.0, box, 0.9))
            if tid == SUBJECT:
                x1, y1, x2, y2 = (int(v) for v in box)
                crop = frames[i][max(0, y1) : y2, max(0, x1) : x2]
                thumb = svc.settings.thumbs_dir / "street" / f"t{tid}_{i}.jpg"
                cv2.imwrite(str(thumb), crop)
                vec = svc.embedder.embed([np.ascontiguousarray(crop[:, :, ::-1])])[0]
                rows.append(NewSighting("street", tid, START + i / 30.0, i / 30.0, box, 0.9, 0.5,
                                        str(thumb.relative_to(svc.settings.data_dir)), vec))  # fmt: skip
    ids = svc.store.commit_chunk(rec.id, Checkpoint(rows, boxes, len(frames) / 30.0, len(frames), True))
    case = svc.casework.create("street", "", "ana")
    svc.casework.add(case.id, [str(ids[2])], "ana")  # the subject at frame 3
    yield svc, case.id, video, gt
    svc.close()


@pytest.fixture(scope="module")
def exports(street, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The case exported in each mode (unredacted by an operator with a reason): {mode: (report, zip path)}."""
    svc, case_id, video, _ = street
    out = tmp_path_factory.mktemp("exports")
    before = hashlib.sha256(video.read_bytes()).hexdigest()
    got = {}
    for mode in ("none", "bystanders", "faces"):
        reason = "court order 2026-114" if mode == "none" else None
        got[mode] = (svc.casework.export(case_id, out / f"{mode}.zip", "ana", {"role": "admin"}, reason=reason, redact=mode), out / f"{mode}.zip")
    assert hashlib.sha256(video.read_bytes()).hexdigest() == before  # the original footage is only read
    return got


def test_a_clip_of_a_video_shorter_than_half_a_second_is_cut(street) -> None:  # type: ignore[no-untyped-def]
    """read_on took such a video for its own next segment and read it again until memory ran out."""
    from vsearch.clips import read_on

    svc, case_id, _, _ = street
    (item,) = svc.catalog.case_items(case_id)
    video = svc.catalog.video(item.video_id)
    assert [i for i, _ in read_on(svc.catalog, video, 0, 100, "test")] == [0, 1, 2, 3]


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _image(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _clip_frames(data: bytes, tmp: Path) -> list[np.ndarray]:
    import av

    p = tmp / "clip.mp4"
    p.write_bytes(data)
    with av.open(str(p)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def _one(members: dict[str, bytes], folder: str) -> bytes:
    (name,) = [n for n in members if n.startswith(folder)]
    return members[name]


def test_dlib_matches_a_bystander_in_the_unredacted_export_and_not_after_redaction(street, exports, faces, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Her face as dlib finds it in the source's first frame is the reference. In each exported image (the full
    frame and every clip frame) her face is where dlib finds it in the unredacted export's image (else where it
    was in the source): there dlib matches her unredacted, and matches nobody once redacted (nor does any face
    its detector finds there)."""
    seq = dataset(SEQ)
    reference = cv2.imread(str(seq / "img1" / "000001.jpg"))
    (rect0, ref), = faces.find(reference, REGION)  # her face, at the top right (the poster's face lies outside)

    def images(mode: str) -> list[np.ndarray]:
        m = _members(exports[mode][1])
        return [_image(_one(m, "frames/")), *_clip_frames(_one(m, "clips/"), tmp_path)]

    plain = images("none")
    assert len(plain) == 5  # the full frame and the clip's 4 frames
    rects = []
    for img in plain:
        near = [r for r, _ in faces.find(img, REGION) if abs(r.center().x - rect0.center().x) < rect0.width()]
        rects.append(near[0] if near else rect0)
    unredacted = [float(np.linalg.norm(faces.describe_at(img, r) - ref)) for img, r in zip(plain, rects)]
    assert unredacted[0] < MATCH and sum(d < MATCH for d in unredacted) >= 4, unredacted  # dlib knows her
    for mode in ("bystanders", "faces"):
        for i, (img, r) in enumerate(zip(images(mode), rects)):
            distance = float(np.linalg.norm(faces.describe_at(img, r) - ref))
            assert distance > MATCH, f"{mode} image {i}: the bystander's face still matches ({distance:.2f})"
            assert all(np.linalg.norm(d - ref) > MATCH for _, d in faces.find(img, REGION)), f"{mode} image {i}"


def test_the_subject_is_left_as_it_was(street, exports) -> None:  # type: ignore[no-untyped-def]
    svc, _, _, gt = street
    plain = _image(_one(_members(exports["none"][1]), "frames/"))
    x1, y1, x2, y2 = (int(v) for v in gt[SUBJECT][2])
    inner = (slice(y1 + 16, y2 - 16), slice(x1 + 16, x2 - 16))  # inside the drawn box, away from its JPEG blocks
    bx1, by1, bx2, by2 = (int(v) for v in gt[BYSTANDER][2])
    for mode in ("bystanders", "faces"):
        redacted = _image(_one(_members(exports[mode][1]), "frames/"))
        assert np.array_equal(redacted[inner], plain[inner]), mode
        head = (slice(by1, by1 + (by2 - by1) // 6), slice(bx1, bx2))
        assert np.abs(redacted[head].astype(int) - plain[head].astype(int)).mean() > 5, mode  # her head changed


def test_manifest_records_the_mode_source_and_exported_hashes_and_verify_passes(street, exports) -> None:  # type: ignore[no-untyped-def]
    svc, case_id, video, _ = street
    for mode, (report, path) in exports.items():
        assert verify_zip(path, report.manifest_sha256).ok, mode
        m = _members(path)
        manifest = json.loads(m["manifest.json"])
        assert manifest["redaction"]["mode"] == mode
        (clip,) = manifest["clips"]
        src = clip["source_video"]
        assert src["sha256_at_ingest"] == src["sha256_at_export"] == hashlib.sha256(video.read_bytes()).hexdigest()
        listed = {f["path"]: f["sha256"] for f in manifest["files"]}
        for name in (clip["files"]["clip"], clip["files"]["frame"], clip["files"]["crop"]):
            assert listed[name] == hashlib.sha256(m[name]).hexdigest()  # the hashes of what was exported
        assert clip["rerender_matches"] is True, mode
        if mode != "none":
            assert clip["redaction"]["clip"]["covers_from_detections"] > 0  # the unstored bystanders, found
            assert clip["redaction"]["clip"]["covers_from_stored_boxes"] > 0
    # the exported files differ between modes; the clip cache's (unredacted, served) clip is untouched
    assert len({_one(_members(p), "clips/") for _, p in exports.values()}) == 3
    cached = list(svc.settings.clips_dir.glob("*.mp4"))
    assert [hashlib.sha256(c.read_bytes()).hexdigest() for c in cached] == [
        hashlib.sha256(_one(_members(exports["none"][1]), "clips/")).hexdigest()]
    entries = [e for e in svc.audit.read(50) if e.get("action") == "case.export"]
    assert sorted(e["redact"] for e in entries) == ["bystanders", "faces", "none"]


# -- who may export unredacted -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("context", "reason", "error"),
    [
        ({"role": "investigator"}, "court order", PermissionDeniedError),
        ({"role": "investigator"}, None, PermissionDeniedError),
        ({"role": "admin"}, None, InputError),
        ({"role": "admin"}, "   ", InputError),
        ({"role": "cli"}, None, InputError),
    ],
)
def test_an_unredacted_export_needs_an_admin_and_a_reason(street, tmp_path: Path, context, reason, error) -> None:  # type: ignore[no-untyped-def]
    svc, case_id, _, _ = street
    before = len(svc.audit.read(1000))
    with pytest.raises(error):
        svc.casework.export(case_id, tmp_path / "x.zip", "ivan", context, reason=reason, redact="none")
    assert not (tmp_path / "x.zip").exists() and len(svc.audit.read(1000)) == before


def test_the_unredacted_export_records_the_admin_and_the_reason(street, exports) -> None:  # type: ignore[no-untyped-def]
    svc, case_id, _, _ = street
    (entry,) = [e for e in svc.audit.read(50) if e.get("action") == "case.export" and e.get("redact") == "none"]
    assert entry["role"] == "admin" and entry["reason"] == "court order 2026-114" and entry["key_name"] == "ana"
    manifest = json.loads(_members(exports["none"][1])["manifest.json"])
    assert manifest["redaction"] == {"mode": "none", "note": "unredacted: every person as recorded", "role": "admin",
                                     "reason": "court order 2026-114"}  # fmt: skip


def test_an_unknown_mode_is_refused(street, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc, case_id, _, _ = street
    with pytest.raises(InputError, match="bystanders, faces, none"):
        svc.casework.export(case_id, tmp_path / "x.zip", "ana", redact="blur")


# -- the planning rules, on made-up boxes ---------------------------------------------------------------------------
def _dets(*boxes: tuple[float, float, float, float]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))


def test_the_subject_is_kept_a_bystander_behind_is_covered_around_it_and_one_in_front_whole() -> None:
    subject = (100.0, 100.0, 200.0, 400.0)
    behind = (180.0, 80.0, 260.0, 300.0)  # ends higher: further away
    front = (150.0, 150.0, 250.0, 460.0)  # ends lower: nearer the camera
    covers, subj, n_stored, n_det = plan_frame(subject, [], _dets((102, 98, 203, 402), behind, front), "bystanders")
    assert subj == pytest.approx((102, 98, 203, 402)) and (n_stored, n_det) == (0, 2)
    in_front = {c.xyxy[3] > 450: c for c in covers}
    assert in_front[False].keep == subj and in_front[True].keep is None
    img = np.random.default_rng(0).integers(0, 255, (500, 400, 3), np.uint8)
    out = img.copy()
    apply_covers(out, covers)
    assert np.array_equal(out[98:135, 102:140], img[98:135, 102:140])  # the subject, where nobody stands in front
    assert not np.array_equal(out[400:460, 150:250], img[400:460, 150:250])  # the one in front, covered


def test_a_stored_track_alone_is_covered_and_the_subject_without_detection_is_its_stored_box() -> None:
    covers, subj, n_stored, n_det = plan_frame((0.0, 0.0, 50.0, 100.0), [(300.0, 0.0, 350.0, 100.0)], _dets(), "bystanders")
    assert subj == (0.0, 0.0, 50.0, 100.0) and (n_stored, n_det) == (1, 0)
    assert covers[0].xyxy == pytest.approx((295.0, -10.0, 355.0, 110.0))  # padded for the interpolation's drift


def test_heads_come_from_keypoints_else_from_the_top_of_the_box() -> None:
    box = (100.0, 100.0, 160.0, 300.0)
    kp = np.zeros((17, 3), np.float32)
    assert head_box(box, kp) == pytest.approx((100.0, 94.0, 160.0, 150.0))  # no keypoint seen: the top quarter
    kp[0] = (140, 120, 0.9)  # the nose only: a head at least a fifth of the box tall around it
    x1, y1, x2, y2 = head_box(box, kp)
    assert x1 < 140 < x2 and y1 < 120 < y2 and y2 - y1 >= 0.2 * 200


def test_covers_pixelate_coarsely() -> None:
    img = np.random.default_rng(1).integers(0, 255, (200, 200, 3), np.uint8)
    apply_covers(img, [Cover((0, 0, 200, 200), 8)])
    assert len(np.unique(img.reshape(-1, 3), axis=0)) <= 64  # 8 x 8 blocks at most
