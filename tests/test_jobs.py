"""The ingest job runner: order, progress over a job's files, outcomes and failures.

The service is a stand-in that reports what a real ingest reports (IngestReport) without running models: what is
under test is the runner's bookkeeping, which the slow API tests exercise only on the happy path."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from api.jobs import JobRunner
from vsearch.errors import NotFoundError
from vsearch.ingest import IngestItem, IngestReport

T0 = 1_772_373_600.0


class FakeIngest:
    """Ingests each file in two progress steps; `outcomes[name]` is a status, an error, or an exception to raise."""

    def __init__(self, outcomes: dict[str, str | Exception] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.seen: list[str] = []
        self.progress_seen: list[tuple[float, float]] = []  # the job's (done, total) after each progress call
        self.running = 0
        self.max_running = 0
        self.runner: JobRunner | None = None
        self._lock = threading.Lock()

    def ingest(
        self, items: Sequence[IngestItem], progress: Callable[[float, float], None]
    ) -> list[IngestReport]:
        (item,) = items
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            name = item.path.name
            self.seen.append(name)
            outcome = self.outcomes.get(name, "ingested")
            if isinstance(outcome, Exception):
                raise outcome
            video_s = float(name.split(".")[0].split("-")[-1])  # "a-10.mp4": 10 s of video
            for done in (video_s / 2, video_s):
                progress(done, video_s)
                if self.runner is not None:  # camera cam-N is job-N in these tests
                    job = self.runner.get(f"job-{item.camera_id.removeprefix('cam-')}")
                    self.progress_seen.append((job.video_s_done, job.video_s_total))
            if outcome == "ingested":
                return [IngestReport(str(item.path), item.camera_id, "ingested", 1, 4, 0, 2, video_s)]
            return [IngestReport(str(item.path), item.camera_id, "failed", video_s=0.0, error=outcome)]
        finally:
            with self._lock:
                self.running -= 1


def items(camera: str, *names: str) -> list[IngestItem]:
    return [IngestItem(Path("/footage") / camera / n, camera, T0) for n in names]


def run(service: FakeIngest, *jobs: list[IngestItem]) -> JobRunner:
    runner = JobRunner(service)  # type: ignore[arg-type]
    service.runner = runner
    for job_items in jobs:
        runner.submit(job_items[0].camera_id, job_items)
    runner.close()  # finishes the queued jobs
    return runner


def test_a_job_of_several_files_reports_progress_over_all_of_them() -> None:
    service = FakeIngest()
    runner = run(service, items("cam-1", "a-10.mp4", "b-4.mp4"))
    job = runner.get("job-1")
    assert (job.status, job.result, job.files_total, job.files_done) == ("done", "ingested", 2, 2)
    assert (job.frames_sampled, job.sightings_added, job.errors) == (8, 4, [])
    assert (job.video_s_done, job.video_s_total) == (14.0, 14.0)
    # the second file's progress counts on top of the first file's seconds, and never runs backwards
    assert service.progress_seen == [(5.0, 10.0), (10.0, 10.0), (12.0, 14.0), (14.0, 14.0)]
    assert job.finished_at is not None and job.finished_at >= job.created_at


@pytest.mark.parametrize(
    "names, outcomes, status, errors",
    [
        (["a-1.mp4"], {"a-1.mp4": "truncated file"}, "failed", ["truncated file"]),
        (["a-1.mp4", "b-2.mp4"], {"a-1.mp4": "truncated file"}, "done", ["a-1.mp4: truncated file"]),
        (
            ["a-1.mp4", "b-2.mp4"],
            {"a-1.mp4": "bad", "b-2.mp4": "worse"},
            "failed",
            ["a-1.mp4: bad", "b-2.mp4: worse"],
        ),
        (
            ["a-1.mp4", "b-2.mp4"],
            {"b-2.mp4": RuntimeError("disk full")},
            "failed",
            ["RuntimeError: disk full"],
        ),
    ],
)
def test_a_job_fails_when_all_its_files_fail_and_names_each_failure(
    names: list[str], outcomes: dict, status: str, errors: list[str]
) -> None:
    runner = run(FakeIngest(outcomes), items("cam-1", *names))
    job = runner.get("job-1")
    assert (job.status, job.errors) == (status, errors)


def test_jobs_run_one_at_a_time_in_order_and_a_crash_does_not_stop_the_worker() -> None:
    service = FakeIngest({"boom-1.mp4": ValueError("unexpected")})
    runner = run(
        service, items("cam-1", "a-1.mp4"), items("cam-2", "boom-1.mp4"), items("cam-3", "c-1.mp4", "d-1.mp4")
    )
    assert service.seen == ["a-1.mp4", "boom-1.mp4", "c-1.mp4", "d-1.mp4"] and service.max_running == 1
    assert [runner.get(f"job-{i}").status for i in (1, 2, 3)] == ["done", "failed", "done"]
    assert runner.counts() == {"done": 2, "failed": 1}


def test_submitting_after_close_starts_a_new_worker() -> None:
    service = FakeIngest()
    runner = run(service, items("cam-1", "a-1.mp4"))
    job = runner.submit("again", items("cam-2", "b-1.mp4"))
    assert job.id == "job-2" and job.camera_id == "cam-2" and job.start_ts_s == T0
    runner.close()
    assert runner.get("job-2").status == "done" and service.seen == ["a-1.mp4", "b-1.mp4"]


def test_an_unknown_job_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="no job with id 'job-9'"):
        JobRunner(FakeIngest()).get("job-9")  # type: ignore[arg-type]
