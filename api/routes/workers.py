"""GET /v1/workers (admin scope): the live worker processes (heartbeat within
worker_stale_seconds), what they run on and whether they are busy. Workers serve every tenant;
the job in hand is named only when it is the caller's."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select

from db import workers
from db.models import Job

from .. import wire
from ..deps import Principal, require, session, settings
from ..schemas import Page

router = APIRouter(tags=["workers"])


@router.get("/v1/workers", response_model=Page)
def list_workers(s=Depends(session), cfg=Depends(settings), p: Principal = Depends(require("admin"))):
    rows = workers.live(s, cfg.worker_stale_seconds)
    busy = {r.current_job_id for r in rows if r.current_job_id}
    mine = set(s.scalars(select(Job.id).where(Job.id.in_(busy), Job.tenant_id == p.tenant_id))) if busy else set()
    return wire.JSON(wire.page([_out(r, mine) for r in rows], False))


def _out(r, mine: set[str]) -> dict:
    return {"id": r.id, "object": "worker", "name": r.name, "host": r.host, "pid": r.pid, "queue": r.queue,
            "device": r.device, "gpu_name": r.gpu_name, "gpu_memory_bytes": r.gpu_memory_bytes,
            "host_memory_bytes": r.host_memory_bytes, "cpus": r.cpus, "version": r.version,
            "busy": r.current_job_id is not None,
            "current_job_id": r.current_job_id if r.current_job_id in mine else None,
            "started_at": wire.ts(r.started_at), "heartbeat_at": wire.ts(r.heartbeat_at)}
