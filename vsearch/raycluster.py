"""Joining a Ray cluster (or starting a local one): shared by the ingest workers (vsearch/cluster.py) and the shard
owners (vsearch/partitions.py). Ray is imported only when called."""

from __future__ import annotations

import os
from typing import Any

from vsearch.errors import InputError


def ray_module() -> Any:
    """The ray module, with usage statistics off (no phoning home from air-gapped servers)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise InputError(f"this needs ray: {e}") from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local one; returns the ray module."""
    ray = ray_module()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    return ray
