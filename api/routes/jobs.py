from __future__ import annotations

import json
from datetime import datetime

from fastapi import APIRouter, Depends, Header, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import jobs
from db import status as st
from db.artifacts import store_for
from db.models import Artifact, Job
from pruning_core.spec import DECLARED

from .. import service, wire
from ..deps import Principal, require, session, settings
from ..problems import Problem
from ..schemas import JobCreate, JobEstimate, JobOut, Page

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def load_job(s: Session, p: Principal, job_id: str) -> Job:
    job = jobs.get_job(s, p.tenant_id, job_id)
    if job is None:  # another tenant's job is indistinguishable from a missing one
        raise Problem(404, "not-found", "Job not found", f"no job {job_id}")
    return job


@router.post("", status_code=201, response_model=JobOut)
def create_job(body: JobCreate, s: Session = Depends(session), cfg=Depends(settings),
               p: Principal = Depends(require("jobs:write")),
               idempotency_key: str | None = Header(None, max_length=255)):
    code, payload, replayed = service.create_job(s, cfg, p.tenant_id, body, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return wire.JSON(payload, status_code=code, headers=headers)


@router.post("/estimate", response_model=JobEstimate)
def estimate_job(body: JobCreate, s: Session = Depends(session), cfg=Depends(settings),
                 p: Principal = Depends(require("jobs:read"))):
    """What the job would need (host and GPU memory, disk, a duration range) on each class of
    live worker, from the model's config.json alone, and whether POST /v1/jobs would admit it.
    Nothing is queued."""
    from ..admission import estimate

    return wire.JSON(estimate(s, cfg, service.normalized_spec(s, cfg, p.tenant_id, body)))


@router.get("", response_model=Page)
def list_jobs(request: Request, s: Session = Depends(session), p: Principal = Depends(require("jobs:read")),
              limit: int = Query(20, ge=1, le=100), after: str | None = Query(None, max_length=40),
              status: str | None = Query(None, max_length=20), method: str | None = Query(None, max_length=40),
              model: str | None = Query(None, max_length=500), schedule_id: str | None = Query(None, max_length=40),
              created_after: datetime | None = None, created_before: datetime | None = None):
    """Newest first. Filter on metadata with `metadata[key]=value` query parameters."""
    metadata = {k[9:-1]: v for k, v in request.query_params.items() if k.startswith("metadata[") and k.endswith("]")}
    for name, value, known in (("status", status, st.STATUSES), ("method", method, tuple(DECLARED))):
        if value is not None and value not in known:  # a typo would otherwise answer an empty page
            message = f"unknown {name} {value!r}; choose from {', '.join(known)}"
            raise Problem(422, "validation-error", "Request is not valid", f"{name}: {message}",
                          errors=[{"field": name, "message": message}])
    try:
        rows, more = jobs.list_jobs(s, p.tenant_id, limit, after, status, method, model, created_after,
                                    created_before, metadata, schedule_id)
    except LookupError:
        raise Problem(400, "invalid-cursor", "Invalid cursor", f"no job {after} to page after")
    return wire.JSON(wire.page([wire.job(j) for j in rows], more))


@router.get("/compare", response_model=Page)
def compare_jobs(s: Session = Depends(session), p: Principal = Depends(require("jobs:read")),
                 ids: str = Query(..., max_length=1000, description="2 to 10 job ids, comma-separated")):
    """The jobs side by side, in the order given: method, settings, perplexity, zero-shot, time,
    gates. A job not finished yet is listed with what it has so far."""
    from ..compare import MAX_JOBS, row

    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if not 2 <= len(set(wanted)) == len(wanted) <= MAX_JOBS:
        message = f"give 2 to {MAX_JOBS} different job ids, comma-separated"
        raise Problem(422, "validation-error", "Request is not valid", f"ids: {message}",
                      errors=[{"field": "ids", "message": message}])
    return wire.JSON(wire.page([row(load_job(s, p, job_id)) for job_id in wanted], False))


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, s: Session = Depends(session), p: Principal = Depends(require("jobs:read"))):
    return wire.JSON(wire.job(load_job(s, p, job_id)))


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, s: Session = Depends(session), p: Principal = Depends(require("jobs:write"))):
    job = load_job(s, p, job_id)
    try:
        jobs.request_cancel(s, job)
    except jobs.IllegalTransition:
        raise Problem(409, "job-finished", "Job already finished", f"job {job_id} is {job.status}")
    s.commit()
    return wire.JSON(wire.job(job))


@router.delete("/{job_id}", status_code=204)
def delete_job(job_id: str, s: Session = Depends(session), cfg=Depends(settings),
               p: Principal = Depends(require("jobs:write"))):
    job = load_job(s, p, job_id)
    if job.status not in st.TERMINAL:
        raise Problem(409, "job-not-finished", "Job not finished", f"cancel job {job_id} first; it is {job.status}")
    store_for(cfg).delete_prefix(f"jobs/{job.id}")
    s.delete(job)
    s.commit()


@router.get("/{job_id}/report")
def get_report(job_id: str, s: Session = Depends(session), cfg=Depends(settings),
               p: Principal = Depends(require("jobs:read"))):
    job = load_job(s, p, job_id)
    art = s.scalar(select(Artifact).where(Artifact.job_id == job.id, Artifact.name == "report.json"))
    if art is None:
        raise Problem(404, "report-not-available", "No report yet", f"job {job_id} is {job.status}")
    return json.loads(store_for(cfg).read_bytes(art.location))
