"""Schedules: a job spec plus a cron expression in a time zone (nightly compression jobs). The
worker supervisors fire them (db/schedules.py); every job a schedule creates carries its
schedule_id and slot, so `GET /v1/jobs?schedule_id=...` is the schedule's history."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from db import schedules
from db.models import Schedule, utcnow

from .. import crud, service, wire
from ..deps import Principal, require, session, settings
from ..schemas import Page, ScheduleCreate, ScheduleOut, ScheduleUpdate

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


def _out(sch: Schedule) -> dict:
    """schemas.ScheduleOut"""
    return {"id": sch.id, "object": "schedule", "name": sch.name, "cron": sch.cron, "timezone": sch.timezone,
            "misfire": sch.misfire, "enabled": sch.enabled, "spec": sch.spec, "metadata": sch.metadata_ or {},
            "next_fire_at": wire.ts(sch.next_fire_at), "last_fired_at": wire.ts(sch.last_fired_at),
            "last_job_id": sch.last_job_id, "created_at": wire.ts(sch.created_at)}


def _load(s: Session, p: Principal, schedule_id: str) -> Schedule:
    return crud.owned(s, Schedule, schedule_id, p.tenant_id, "schedule")


@router.post("", status_code=201, response_model=ScheduleOut)
def create_schedule(body: ScheduleCreate, s: Session = Depends(session), cfg=Depends(settings),
                    p: Principal = Depends(require("jobs:write"))):
    spec = service.normalized_spec(s, cfg, p.tenant_id, body.job, prefix="job.")  # the model resolves now, as for a job
    sch = Schedule(tenant_id=p.tenant_id, name=body.name, cron=body.cron, timezone=body.timezone, misfire=body.misfire,
                   enabled=body.enabled, spec=spec, metadata_=body.job.metadata,
                   next_fire_at=schedules.next_slot(body.cron, body.timezone, utcnow()))
    crud.add_named(s, sch, "schedule")
    return wire.JSON(_out(sch), status_code=201)


@router.get("", response_model=Page)
def list_schedules(s: Session = Depends(session), p: Principal = Depends(require("jobs:read"))):
    rows = crud.listed(s, Schedule, p.tenant_id, Schedule.name)
    return wire.JSON(wire.page([_out(x) for x in rows], False))


@router.get("/{schedule_id}", response_model=ScheduleOut)
def get_schedule(schedule_id: str, s: Session = Depends(session), p: Principal = Depends(require("jobs:read"))):
    return wire.JSON(_out(_load(s, p, schedule_id)))


@router.patch("/{schedule_id}", response_model=ScheduleOut)
def update_schedule(schedule_id: str, body: ScheduleUpdate, s: Session = Depends(session),
                    p: Principal = Depends(require("jobs:write"))):
    """Change the timing or pause/resume. The next slot is recomputed from now, so resuming a
    paused schedule never fires the slots it missed while paused."""
    sch = _load(s, p, schedule_id)
    crud.apply(sch, body)
    sch.next_fire_at = schedules.next_slot(sch.cron, sch.timezone, utcnow())
    s.commit()
    return wire.JSON(_out(sch))


@router.delete("/{schedule_id}", status_code=204)
def delete_schedule(schedule_id: str, s: Session = Depends(session), p: Principal = Depends(require("jobs:write"))):
    """Its jobs stay (their schedule_id becomes null)."""
    s.delete(_load(s, p, schedule_id))
    s.commit()
