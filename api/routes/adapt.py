"""POST /adapt (admins): learn this deployment's cameras from its own footage, or roll back; GET /adapt/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Admin
from api.jobs import AdaptRunner
from api.schemas import Detail
from vsearch.adapt import AdaptOptions
from vsearch.config import ADAPT_BUDGET_S, ADAPT_ROUNDS

router = APIRouter(tags=["adapt"])


def get_adapt_jobs(request: Request) -> AdaptRunner:
    """The adaptation job runner."""
    return request.app.state.adapt_jobs


AdaptJobs = Annotated[AdaptRunner, Depends(get_adapt_jobs)]


class AdaptIn(BaseModel):
    """What to do: adapt within a budget (the base model is the deployment's own, models/reid/<embedder>.pt), or
    roll back to the embedder in use before the last switch."""

    model_config = ConfigDict(extra="forbid")

    rollback: bool = False
    budget_s: Annotated[float, Field(ge=1, le=86400, description="Wall seconds of fine-tuning.")] = ADAPT_BUDGET_S
    rounds: Annotated[int, Field(ge=1, le=20, description="Re-cluster / train rounds within the budget.")] = ADAPT_ROUNDS
    crops_per_track: Annotated[int, Field(ge=1, le=1000, description="Stored crops used per track at most.")] = 8
    seed: int = 0
    max_steps: Annotated[int | None, Field(ge=1, description="Stop after this many training steps (tests).")] = None


class AdaptJobOut(BaseModel):
    """An adaptation job: status, progress messages, and what it made (embedder, sha256, sightings switched)."""

    id: str
    kind: str
    by: str
    status: str
    messages: list[str]
    result: dict[str, Any] | None
    errors: list[str]
    created_at: float
    finished_at: float | None


@router.post("/adapt", status_code=202, response_model=AdaptJobOut,
             responses={400: {"model": Detail}, 401: {"model": Detail}, 403: {"model": Detail}, 409: {"model": Detail},
                        422: {"model": Detail}})  # fmt: skip
async def start_adapt(body: AdaptIn, request: Request, response: Response, jobs: AdaptJobs, key: Admin) -> AdaptJobOut:
    """Start an adaptation (or a rollback); returns at once (202, Location: /adapt/{id}). Searches keep answering
    from the current vectors until the new ones are complete. 409 while another adaptation runs."""
    options = None if body.rollback else AdaptOptions(
        budget_s=body.budget_s, rounds=body.rounds, max_crops_per_track=body.crops_per_track, seed=body.seed,
        max_steps=body.max_steps,
    )  # fmt: skip
    job = jobs.submit(options, key.name)
    request.state.audit = {"job": job.id, "kind": job.kind}
    response.headers["Location"] = f"/adapt/{job.id}"
    return AdaptJobOut(**job.as_dict())


@router.get("/adapt/{job_id}", response_model=AdaptJobOut, responses={401: {"model": Detail}, 403: {"model": Detail},
                                                                     404: {"model": Detail}})  # fmt: skip
async def get_adapt(job_id: str, jobs: AdaptJobs, _: Admin) -> AdaptJobOut:
    """An adaptation job's status, progress and result."""
    return AdaptJobOut(**jobs.get(job_id).as_dict())
