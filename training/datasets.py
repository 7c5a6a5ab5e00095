"""The datasets vsearch's re-ID model is trained and scored on, beside the project in ../shared/datasets/: where
they are, which identities each split holds, and converters into the Market-1501 layout that `vsearch eval` reads.

One fold definition (`pku_fold`) is shared by training (which holds a fold out) and evaluation (which scores a
model only on the fold it never saw).
"""

from __future__ import annotations

import csv
import random
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from vsearch.config import PROJECT_ROOT
from vsearch.errors import InputError

DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
PKU = DATASETS / "pku-reid-subset"
MOT = DATASETS / "mot17-mini" / "train"
CUHK01 = DATASETS / "cuhk01"  # 671 ids x 2 cameras x 2 crops, 60x160
CUHK03 = DATASETS / "cuhk03-labeled-pair1"  # 843 ids x 2 cameras x <= 4 crops, hand-drawn boxes
CUHK_TEST_IDS = 100  # identities of each CUHK set held out of every training run, for scoring
MARKET = DATASETS / "market1501-train"  # 751 ids x 6 cameras (12,936 crops, 64x128), identity-level attributes
MARKET_TEST_IDS = 151  # identities held out of every training run (ReID and attributes), for scoring


@dataclass(frozen=True)
class CropFile:
    """One crop of a two-camera re-ID set: its file, person id and camera (1 or 2)."""

    path: Path
    pid: int
    cam: int


def read_manifest(root: Path) -> list[CropFile]:
    """The crops of a Market-named set with a `manifest.csv` (`file,identity,camera,...`), such as CUHK01/CUHK03."""
    manifest = Path(root) / "manifest.csv"
    if not manifest.is_file():
        raise InputError(f"{root}: expected a manifest.csv (file,identity,camera,source_file), found none")
    with open(manifest) as f:
        return [CropFile(Path(root) / r["file"], int(r["identity"]), int(r["camera"])) for r in csv.DictReader(f)]


def cuhk_split(root: Path, n_test: int = CUHK_TEST_IDS, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train ids, test ids) of a CUHK set: a seeded shuffle of its identities, the first `n_test` held out.
    Identity-disjoint; the same on every call, so training never sees the ids that evaluation scores."""
    ids = sorted({c.pid for c in read_manifest(root)})
    random.Random(seed).shuffle(ids)
    return sorted(ids[n_test:]), sorted(ids[:n_test])


def market_files() -> list[CropFile]:
    """Every crop of the Market-1501 training part (`bounding_box_train/PPPP_cC_NNNN.jpg`)."""
    files = sorted((MARKET / "bounding_box_train").glob("*.jpg"))
    if not files:
        raise InputError(f"{MARKET}: expected bounding_box_train/PPPP_cC_NNNN.jpg crops, found none")
    return [CropFile(f, int(f.name[:4]), int(f.name[6])) for f in files]


def market_split(n_test: int = MARKET_TEST_IDS, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train ids, test ids) of Market: a seeded shuffle of its 751 identities, the first `n_test` held out of
    every training run (the same split for re-ID and attribute models)."""
    ids = sorted({c.pid for c in market_files()})
    random.Random(seed).shuffle(ids)
    return sorted(ids[n_test:]), sorted(ids[:n_test])


def load_market() -> list[tuple[np.ndarray, int, int]]:
    """(crop_rgb, pid, cam) of every Market crop."""
    return [(read_bgr(c.path)[:, :, ::-1].copy(), c.pid, c.cam) for c in market_files()]


def convert_market(out: Path, pids: Sequence[int]) -> dict[str, int]:
    """Write the crops of `pids` in the Market layout with Market's multi-camera protocol: the first crop of each
    identity on each camera is a query, every crop is in the gallery (the same person on the same camera is left
    out of each query's ranking by the protocol), so each query must find the person on the other five cameras."""
    keep = set(pids)
    crops = [c for c in market_files() if c.pid in keep]
    for sub in ("query", "bounding_box_test"):
        (Path(out) / sub).mkdir(parents=True, exist_ok=True)
    seen: set[tuple[int, int]] = set()
    for i, c in enumerate(crops):
        name = f"{c.pid:04d}_c{c.cam}s1_{i:06d}_00.jpg"
        if (c.pid, c.cam) not in seen:
            seen.add((c.pid, c.cam))
            shutil.copyfile(c.path, Path(out) / "query" / name)
        shutil.copyfile(c.path, Path(out) / "bounding_box_test" / name)
    return {"identities": len({c.pid for c in crops}), "queries": len(seen), "crops": len(crops)}


def load_manifest_crops(root: Path) -> list[tuple[np.ndarray, int, int]]:
    """(crop_rgb, pid, cam) of every crop of a manifest set (CUHK01, CUHK03)."""
    return [(read_bgr(c.path)[:, :, ::-1].copy(), c.pid, c.cam) for c in read_manifest(root)]


def convert_two_camera(root: Path, out: Path, pids: Sequence[int]) -> dict[str, int]:
    """Write the crops of `pids` of a manifest set in the Market layout, camera 1 as queries and camera 2 as the
    gallery (the cross-camera protocol of `convert_pku`)."""
    keep = set(pids)
    crops = [c for c in read_manifest(root) if c.pid in keep]
    if not crops:
        raise InputError(f"{root}: none of the {len(keep)} requested identities found")
    for sub in ("query", "bounding_box_test"):
        (Path(out) / sub).mkdir(parents=True, exist_ok=True)
    for c in crops:
        shutil.copyfile(c.path, Path(out) / ("query" if c.cam == 1 else "bounding_box_test") / c.path.name)
    return {"identities": len({c.pid for c in crops}), "crops": len(crops)}


def pku_fold(fold: int, folds: int = 4, seed: int = 0) -> list[int]:
    """The PKU-Reid identities of fold `fold` of `folds` identity-disjoint folds (a seeded shuffle of all ids,
    then every `folds`-th): what training with `--folds F --fold K` holds out and evaluation scores it on."""
    if not 0 <= fold < folds:
        raise InputError(f"expected a fold in 0..{folds - 1}, got {fold}")
    ids = pku_ids(PKU)
    random.Random(seed).shuffle(ids)
    return sorted(ids[fold::folds])


def read_bgr(path: Path) -> NDArray[np.uint8]:
    """An image file as a BGR uint8 array; InputError naming the file when it cannot be decoded."""
    img = cv2.imread(str(path))
    if img is None:
        raise InputError(f"{path}: cannot decode image")
    return np.asarray(img, np.uint8)


def load_pku(ids: set[int]) -> list[tuple[np.ndarray, int, int]]:
    """(crop_rgb, pid, cam) for the given PKU identities (unique crops: val/query and val/gallery are copies)."""
    out = []
    for p in sorted(PKU.rglob("*.png")):
        if {"query", "gallery"} & set(p.parts) or not p.parent.name.isdigit():
            continue
        pid, cam = int(p.parent.name), int(p.name.split("_")[0])
        if pid in ids:
            out.append((read_bgr(p)[:, :, ::-1].copy(), pid, cam))
    return out


def load_mot(min_h: int = 96, min_vis: float = 0.6) -> list[tuple[np.ndarray, int, int]]:
    """Crops of MOT17-mini pedestrians (visible, tall enough); identities unique per sequence, camera = sequence."""
    out = []
    for s_i, seq in enumerate(sorted(MOT.iterdir())):
        rows = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        rows = rows[(rows[:, 6] == 1) & (rows[:, 7] == 1) & (rows[:, 8] >= min_vis) & (rows[:, 5] >= min_h)]
        frames: dict[int, np.ndarray] = {}
        for f, tid, x, y, w, h in rows[:, :6]:
            img = frames.setdefault(int(f), read_bgr(seq / "img1" / f"{int(f):06d}.jpg"))
            x1, y1 = max(0, int(x)), max(0, int(y))
            crop = img[y1 : int(y + h), x1 : int(x + w)]
            if crop.shape[0] >= min_h and crop.shape[1] >= 16:
                out.append((crop[:, :, ::-1].copy(), 100_000 + 1000 * s_i + int(tid), 100 + s_i))
    by_pid: dict[int, int] = {}
    for _, pid, _ in out:
        by_pid[pid] = by_pid.get(pid, 0) + 1
    return [o for o in out if by_pid[o[1]] >= 2]  # an identity needs two crops to be a triplet positive


def convert_pku(src: Path, out: Path, pids: Sequence[int] | None = None) -> dict[str, int]:
    """Write PKU-Reid crops (`<pid>/<cam>_<orientation>.png` under src, searched recursively, duplicates of
    val/query and val/gallery ignored) in the Market layout.

    Protocol (cross-camera): the crops of camera 01 are the queries, the crops of camera 02 the gallery, so every
    query must find its person among the other camera's crops of all identities (`PPPP_cC_00000O_00.png`). This
    matches how an investigator searches another camera with a crop from one. `pids` restricts the identities
    (e.g. a held-out fold).
    """
    src, out = Path(src), Path(out)
    crops: dict[tuple[int, int, int], Path] = {}
    for p in sorted(src.rglob("*.png")):
        if {"query", "gallery"} & set(p.parts):
            continue
        m = re.match(r"^0?(\d)_(\d)\.png$", p.name)
        if not m or not p.parent.name.isdigit():
            continue
        pid, cam, orient = int(p.parent.name), int(m.group(1)), int(m.group(2))
        if pids is None or pid in set(pids):
            crops.setdefault((pid, cam, orient), p)
    if not crops:
        raise InputError(f"{src}: no PKU-Reid crops (<pid>/<cam>_<orientation>.png) found")
    for sub in ("query", "bounding_box_test"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for (pid, cam, orient), p in crops.items():
        sub = "query" if cam == 1 else "bounding_box_test"
        shutil.copyfile(p, out / sub / f"{pid:04d}_c{cam}s1_{orient:06d}_00.png")
    return {"identities": len({k[0] for k in crops}), "crops": len(crops)}


def convert_mot(src: Path, out: Path, min_h: int = 64, min_visibility: float = 0.6) -> dict[str, int]:
    """Write pedestrian crops of MOTChallenge sequences (`src/<SEQ>/img1/*.jpg`, `src/<SEQ>/gt/gt.txt`) in the
    Market layout, as an identity-retrieval set pooled over all sequences.

    Protocol: every pedestrian (class 1, consider 1, visibility >= `min_visibility`, box >= `min_h` px tall) seen in
    two or more frames of a sequence gives one query, its crop in its first frame (camera 1), and one gallery crop,
    its crop in its last frame (camera 2); the gallery holds those crops of every identity of every sequence.
    Identities are unique within a sequence, so person id = 1000 * (sequence index + 1) + track id. On MOT17-mini
    (the first 4-8 frames of each sequence) query and match are a fraction of a second apart: an easy, same-camera
    set that checks an embedder on real street footage, not a cross-camera benchmark.
    """
    src, out = Path(src), Path(out)
    seqs = sorted(d for d in src.iterdir() if (d / "gt" / "gt.txt").is_file()) if src.is_dir() else []
    if not seqs:
        raise InputError(f"{src}: no MOTChallenge sequences (<SEQ>/gt/gt.txt) found")
    for sub in ("query", "bounding_box_test"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    n_ids = 0
    for s_i, seq in enumerate(seqs):
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1) & (gt[:, 8] >= min_visibility) & (gt[:, 5] >= min_h)]
        for tid in np.unique(gt[:, 1]).astype(int):
            rows = gt[gt[:, 1] == tid]
            rows = rows[np.argsort(rows[:, 0])]
            if len(rows) < 2:
                continue
            pid = 1000 * (s_i + 1) + int(tid)
            for cam, row in ((1, rows[0]), (2, rows[-1])):
                frame = int(row[0])
                img = read_bgr(seq / "img1" / f"{frame:06d}.jpg")
                x, y, w, h = row[2:6]
                x1, y1 = max(0, int(round(x))), max(0, int(round(y)))
                x2, y2 = min(img.shape[1], int(round(x + w))), min(img.shape[0], int(round(y + h)))
                sub = "query" if cam == 1 else "bounding_box_test"
                cv2.imwrite(str(out / sub / f"{pid:04d}_c{cam}s{s_i + 1}_{frame:06d}_00.png"), img[y1:y2, x1:x2])
            n_ids += 1
    if not n_ids:
        raise InputError(f"{src}: no pedestrian seen in two frames")
    return {"identities": n_ids, "crops": 2 * n_ids}


def pku_ids(src: Path) -> list[int]:
    """Identity ids present in a PKU-Reid folder (from its manifest.csv when there is one)."""
    manifest = Path(src) / "manifest.csv"
    if manifest.exists():
        with open(manifest) as f:
            return sorted({int(r["person_id"]) for r in csv.DictReader(f)})
    return sorted({int(p.parent.name) for p in Path(src).rglob("*.png") if p.parent.name.isdigit()})
