"""Background ingest jobs: one worker thread runs them in order; their progress is readable at any time."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsearch.errors import NotFoundError
from vsearch.service import IngestItem, VSearch


@dataclass
class Job:
    id: str
    path: str
    camera_id: str
    start_ts_s: float
    status: str = "queued"  # queued, running, done, failed
    video_s_done: float = 0.0
    video_s_total: float = 0.0
    frames_sampled: int = 0
    sightings_added: int = 0
    result: str | None = None  # ingested, resumed, already ingested, failed
    errors: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobRunner:
    def __init__(self, service: VSearch) -> None:
        self.service = service
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, path: Path, camera_id: str, start_ts_s: float) -> Job:
        job = Job(id=f"job-{next(self._ids)}", path=str(path), camera_id=camera_id, start_ts_s=start_ts_s)
        self._jobs[job.id] = job
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # started on first use, again after close()
                self._thread = threading.Thread(target=self._run, name="vsearch-ingest-jobs", daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"no job with id {job_id!r}") from None

    def close(self) -> None:
        """Finish the queued jobs and stop the worker."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=600)
            self._thread = None

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            job.status = "running"

            def progress(done_s: float, total_s: float, job: Job = job) -> None:
                job.video_s_done, job.video_s_total = done_s, total_s

            try:
                r = self.service.ingest([IngestItem(Path(job.path), job.camera_id, job.start_ts_s)], progress)[0]
                job.result, job.frames_sampled, job.sightings_added = r.status, r.frames_sampled, r.sightings_added
                if r.error:
                    job.errors.append(r.error)
                job.status = "failed" if r.status == "failed" else "done"
            except Exception as e:  # a job never takes the worker down; the reason is reported
                job.status = "failed"
                job.errors.append(f"{type(e).__name__}: {e}")
            job.finished_at = time.time()
