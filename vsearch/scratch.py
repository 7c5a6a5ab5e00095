"""Scratch space under the data dir (`<data_dir>/tmp`), never the system temp folder: each entry is named
`<prefix>-<pid>-<random>`, so what a killed process left behind (a re-render, an export, an upload being verified)
is recognised by its dead pid and removed by the next process that makes scratch space."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vsearch.config import Settings


def scratch_root(settings: Settings) -> Path:
    """The data dir's scratch folder, created, with what dead processes left in it removed."""
    root = settings.data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale(root)
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale(root: Path) -> list[Path]:
    """Remove the entries of `root` whose owning process is gone (name `<prefix>-<pid>-<random>`); return them."""
    gone = []
    for p in root.iterdir():
        parts = p.name.split("-")
        if len(parts) < 3 or not parts[-2].isdigit() or _alive(int(parts[-2])):
            continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        gone.append(p)
    return gone


def scratch_name(prefix: str) -> str:
    """The start of a scratch entry's name: `<prefix>-<pid>-` (mkstemp/mkdtemp add the random part)."""
    return f"{prefix}-{os.getpid()}-"


@contextmanager
def scratch_dir(settings: Settings, prefix: str) -> Iterator[Path]:
    """A fresh folder under the data dir's scratch space, removed on exit (and by the next sweep if killed)."""
    path = Path(tempfile.mkdtemp(prefix=scratch_name(prefix), dir=scratch_root(settings)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
