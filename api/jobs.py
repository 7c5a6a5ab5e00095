"""Background jobs: ingests (one worker thread runs them in order) and adaptations (one at a time); their progress
is readable at any time."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsearch.adapt import AdaptOptions
from vsearch.errors import BusyError, NotFoundError, VSearchError
from vsearch.ingest import IngestItem
from vsearch.service import VSearch


@dataclass(kw_only=True)
class _JobRecord:
    """What every background job reports besides its own progress."""

    errors: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The job's fields as plain values (the API's JobOut / AdaptJobOut)."""
        return asdict(self)


@dataclass
class Job(_JobRecord):
    """One POST /ingest: a file (or a folder's files, as consecutive recordings) of one camera."""

    id: str
    path: str
    camera_id: str
    start_ts_s: float
    files_total: int = 1
    files_done: int = 0
    status: str = "queued"  # queued, running, done, failed
    video_s_done: float = 0.0  # over all the job's files
    video_s_total: float = 0.0  # known once each file is opened; final when the job ends
    frames_sampled: int = 0
    sightings_added: int = 0
    result: str | None = None  # the last file's outcome: ingested, resumed, already ingested, failed


class JobRunner:
    """Runs ingest jobs one at a time in a daemon thread, so requests return at once and /health stays live."""

    def __init__(self, service: VSearch) -> None:
        self.service = service
        self._jobs: dict[str, Job] = {}
        self._items: dict[str, list[IngestItem]] = {}
        self._uploads: dict[str, Path] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, path: str, items: Sequence[IngestItem], upload: Path | None = None) -> Job:
        """Queue `items` (from vsearch.ingest.plan_ingest) as one job named after `path`. `upload`: a file uploaded
        for this job alone, removed if the job fails (nothing of a failed upload stays in uploads/)."""
        first = items[0]
        job = Job(id=f"job-{next(self._ids)}", path=path, camera_id=first.camera_id, start_ts_s=first.start_ts_s,
                  files_total=len(items))  # fmt: skip
        with self._lock:
            self._jobs[job.id] = job
            self._items[job.id] = list(items)
            if upload is not None:
                self._uploads[job.id] = upload
            if self._thread is None or not self._thread.is_alive():  # started on first use, again after close()
                self._thread = threading.Thread(target=self._run, name="vsearch-ingest-jobs", daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job:
        """The job, or NotFoundError."""
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"no job with id {job_id!r}") from None

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        return dict(Counter(j.status for j in list(self._jobs.values())))

    def close(self) -> None:
        """Finish the queued jobs and stop the worker."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=600)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            job.status = "running"
            done_before = 0.0
            try:
                for item in self._items.pop(job.id):

                    def progress(done_s: float, total_s: float, job: Job = job, before: float = done_before) -> None:
                        job.video_s_done, job.video_s_total = before + done_s, max(job.video_s_total, before + total_s)

                    r = self.service.ingest([item], progress)[0]
                    done_before += r.video_s
                    job.video_s_done = job.video_s_total = max(done_before, job.video_s_done)
                    job.files_done += 1
                    job.result = r.status
                    job.frames_sampled += r.frames_sampled
                    job.sightings_added += r.sightings_added
                    if r.error:
                        job.errors.append(f"{item.path.name}: {r.error}" if job.files_total > 1 else r.error)
                failed = job.result == "failed" if job.files_total == 1 else len(job.errors) == job.files_total
                job.status = "failed" if failed else "done"
            except Exception as e:  # a job never takes the worker down; the reason is reported
                job.status = "failed"
                job.errors.append(f"{type(e).__name__}: {e}")
            upload = self._uploads.pop(job.id, None)
            if upload is not None and job.status == "failed":
                upload.unlink(missing_ok=True)
            job.finished_at = time.time()


@dataclass
class AdaptJob(_JobRecord):
    """One POST /adapt: fine-tune on the catalog's footage and switch to the new embedder, or roll back."""

    id: str
    kind: str  # adapt, rollback
    by: str
    status: str = "queued"  # queued, running, done, failed
    messages: list[str] = field(default_factory=list)  # progress, newest last
    result: dict[str, Any] | None = None


class AdaptRunner:
    """Runs one adaptation (or rollback) at a time in a daemon thread; a second one while one runs is refused."""

    def __init__(self, service: VSearch) -> None:
        self.service = service
        self._jobs: dict[str, AdaptJob] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, options: AdaptOptions | None, by: str) -> AdaptJob:
        """Start adapting with `options` (None: roll back); BusyError while another adaptation runs, InputError for
        what the adaptation would refuse (vsearch.adapt.check)."""
        from vsearch.adapt import check

        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise BusyError("an adaptation is running already: wait for it to finish")
            check(self.service, options)
            job = AdaptJob(id=f"adapt-{next(self._ids)}", kind="adapt" if options else "rollback", by=by)
            self._jobs[job.id] = job
            self._thread = threading.Thread(target=self._run, args=(job, options), name="vsearch-adapt", daemon=True)
            self._thread.start()
        return job

    def get(self, job_id: str) -> AdaptJob:
        """The job, or NotFoundError."""
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"no adaptation job with id {job_id!r}") from None

    def close(self) -> None:
        """Wait for a running adaptation (it ends within its budget plus the re-embedding)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout=3600)

    def _run(self, job: AdaptJob, options: AdaptOptions | None) -> None:
        from vsearch.adapt import adapt, rollback

        job.status = "running"
        try:
            if options is None:
                job.result = asdict(rollback(self.service, job.by, job.messages.append))
            else:
                job.result = adapt(self.service, options, job.by, job.messages.append).as_dict()
            job.status = "done"
        except Exception as e:  # a job never takes the worker down; the reason is reported
            job.status = "failed"
            job.errors.append(f"{type(e).__name__}: {e}" if not isinstance(e, VSearchError) else str(e))
        job.finished_at = time.time()
