"""Ingest on a Ray cluster: many files (or cameras) at once, on as many machines as the cluster has.

Each worker is a Ray actor that loads the detector and the embedder once and ingests one file per task into the
shared catalog (PostgreSQL for several machines; the data dir's SQLite file works for one). Workers only write:
they keep no vector index (search nodes follow the catalog's change log). Everything that makes a single ingest
safe holds here too: a file is identified by its content hash, one worker at a time holds its lease, and a worker
that dies mid-file is restarted by Ray and its task retried, resuming at the file's last checkpoint with nothing
stored twice. A file whose lease is still held by a dead worker on another machine is retried once the lease
expires.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from vsearch.config import Settings
from vsearch.ingest import IngestItem, IngestReport
from vsearch.raycluster import connect
from vsearch.raycluster import ray_module as _ray

ReportFn = Callable[[IngestReport, int, int], None]  # (report, files done, files total)


class IngestWorker:
    """A Ray actor's state: one VSearch over the shared catalog, models loaded on first use."""

    def __init__(self, settings_json: str) -> None:
        from vsearch.service import VSearch

        self.svc = VSearch(Settings.model_validate_json(settings_json), follow_index=False)

    def ingest(self, item: IngestItem) -> IngestReport:
        return self.svc.ingest([item])[0]

    def pid(self) -> int:
        return os.getpid()


def start_workers(settings: Settings, n: int, cpus_per_worker: float = 1.0) -> list[Any]:
    """n ingest actors; Ray restarts one that dies and retries its task."""
    ray = _ray()
    actor = ray.remote(num_cpus=cpus_per_worker, max_restarts=3, max_task_retries=3, max_concurrency=2)(IngestWorker)
    return [actor.remote(settings.model_dump_json()) for _ in range(n)]


def ingest_on_ray(
    settings: Settings,
    items: Sequence[IngestItem],
    workers: int | None = None,
    address: str | None = None,
    on_report: ReportFn | None = None,
    busy_retries: int = 5,
) -> list[IngestReport]:
    """Ingest `items` on the cluster, one file per task, at most `workers` at once (default: one per CPU of the
    cluster). Reports come back in completion order; a file another process is ingesting ("busy") is retried
    after a wait, up to `busy_retries` times, then reported busy."""
    if not items:
        return []
    ray = connect(address)
    n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # workers may run elsewhere than the driver's working directory: give them absolute paths
    settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    actors = start_workers(settings, min(n, len(items)))
    todo = [(IngestItem(it.path.resolve(), it.camera_id, it.start_ts_s, it.sample_fps), 0) for it in items]
    running: dict[Any, tuple[Any, IngestItem, int]] = {}
    idle = list(actors)
    reports: list[IngestReport] = []
    wait_until: dict[int, float] = {}
    while todo or running:
        while idle and todo:
            item, tries = todo.pop(0)
            if time.monotonic() < wait_until.get(id(item), 0.0):
                todo.append((item, tries))
                break
            actor = idle.pop()
            running[actor.ingest.remote(item)] = (actor, item, tries)
        if not running:
            time.sleep(0.5)
            continue
        done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
        for ref in done:
            actor, item, tries = running.pop(ref)
            idle.append(actor)
            try:
                report: IngestReport = ray.get(ref)
            except Exception as e:  # the worker died more often than Ray retries: report it, go on
                report = IngestReport(str(item.path), item.camera_id, "failed", error=f"worker lost: {e}")
            if report.status == "busy" and tries < busy_retries:
                wait_until[id(item)] = time.monotonic() + settings.ingest_lease_s / 2
                todo.append((item, tries + 1))
                continue
            reports.append(report)
            if on_report is not None:
                on_report(report, len(reports), len(items))
    for a in actors:
        ray.kill(a)
    return reports
