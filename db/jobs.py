"""Job repository: the only place that changes a job's status. Every transition is checked
against the status machine, applied as a compare-and-set on the status its writer read, and
recorded as an event in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from . import status as st
from . import webhooks
from .models import Job, JobEvent, utcnow


class IllegalTransition(Exception):
    def __init__(self, job: Job, new: str):
        super().__init__(f"job {job.id} cannot go from {job.status} to {new}")
        self.current, self.new = job.status, new


class Conflict(Exception):
    """The row moved on after the writer read it: another writer's transition (or lease change)
    won the race. `job` has been refreshed, so the loser sees the winner's status."""

    def __init__(self, job: Job, new: str):
        super().__init__(f"job {job.id} changed to {job.status} before it could go to {new}")
        self.job, self.new = job, new


def add_event(session: Session, job: Job, type_: str, data: dict[str, Any]) -> JobEvent:
    """Every event goes through here; status events also queue their webhooks in this transaction."""
    event = JobEvent(job_id=job.id, type=type_, data=data)
    session.add(event)
    if type_ == "status":
        webhooks.record(session, job, data["status"])
    return event


def fresh_progress(stage: str) -> dict[str, Any]:
    return {"stage": stage, "layers_done": 0, "layers_total": None, "percent": 0.0}


def create_job(session: Session, tenant_id: str, spec: dict[str, Any], metadata: dict[str, str],
               schedule: tuple[str, datetime] | None = None) -> Job:
    """A queued job; `schedule` = (schedule id, slot time) for jobs a schedule fires."""
    schedule_id, slot = schedule or (None, None)
    job = Job(tenant_id=tenant_id, status=st.QUEUED, model=spec["model"], method=spec["method"], spec=spec,
              metadata_=metadata, enqueued_at=utcnow(), progress=fresh_progress(st.QUEUED),
              schedule_id=schedule_id, scheduled_for=slot)
    session.add(job)
    session.flush()
    add_event(session, job, "status", {"status": st.QUEUED, "previous": None})
    return job


def transition(session: Session, job: Job, new: str, *, error: tuple[str, str] | None = None,
               result: dict[str, Any] | None = None, where: Sequence[Any] = (), **values: Any) -> Job:
    """Move `job` from the status this writer read to `new`, as one compare-and-set UPDATE
    (conditioned on that status and on `where`, e.g. the lease owner). Of racing writers exactly
    one wins; the others get Conflict with the row refreshed, and no event is written for them.
    Raises IllegalTransition for a move the status machine forbids. `values` are further columns
    set in the same UPDATE. A terminal status drops the lease's expiry but keeps its owner, so the
    owner can tell "finished by me" from "taken from me"."""
    if not st.allowed(job.status, new):
        raise IllegalTransition(job, new)
    previous, now = job.status, utcnow()
    changes: dict[str, Any] = {"status": new, "updated_at": now,
                               "progress": {**(job.progress or {}), "stage": new}, **values}
    if new == st.RUNNING and job.started_at is None:
        changes["started_at"] = now
    if new in st.TERMINAL:
        changes.update(finished_at=now, lease_until=None)
    if error is not None:
        changes["error_code"], changes["error_message"] = error
    if result is not None:
        changes["result"] = result
    session.flush()  # this writer's own pending changes go first, inside the same transaction
    won = session.execute(update(Job).where(Job.id == job.id, Job.status == previous, *where).values(**changes)
                          .execution_options(synchronize_session=False)).rowcount
    if not won:
        session.refresh(job)
        raise Conflict(job, new)
    for key, value in changes.items():
        set_committed_value(job, key, value)
    data: dict[str, Any] = {"status": new, "previous": previous}
    if error is not None:
        data["error"] = {"code": error[0], "message": error[1]}
    add_event(session, job, "status", data)
    return job


def request_cancel(session: Session, job: Job, tries: int = 5) -> Job:
    """queued: cancelled at once. running/evaluating: cancelling, the worker finishes it.
    A racing writer (the worker finishing, another cancel, a claim) is re-read and answered from
    its outcome: one cancel event at most, and never a finished job moved back."""
    for _ in range(tries):
        try:
            if job.status == st.QUEUED:
                return transition(session, job, st.CANCELLED, error=("cancelled", "cancelled by request"))
            if job.status in (st.RUNNING, st.EVALUATING):
                return transition(session, job, st.CANCELLING, cancel_requested=True)
            if job.status == st.CANCELLING:
                return job
            raise IllegalTransition(job, st.CANCELLED)
        except Conflict:
            continue
    raise Conflict(job, st.CANCELLING)


def get_job(session: Session, tenant_id: str, job_id: str) -> Job | None:
    """Tenant-scoped lookup: another tenant's job is simply not found."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))


def list_jobs(session: Session, tenant_id: str, limit: int = 20, after: str | None = None,
              status: str | None = None, method: str | None = None, model: str | None = None,
              created_after: datetime | None = None, created_before: datetime | None = None,
              metadata: dict[str, str] | None = None, schedule_id: str | None = None) -> tuple[list[Job], bool]:
    """Newest first; `after` is the id of the last job of the previous page."""
    q = select(Job).where(Job.tenant_id == tenant_id)
    if after:
        cursor = get_job(session, tenant_id, after)
        if cursor is None:
            raise LookupError(after)
        q = q.where(or_(Job.created_at < cursor.created_at, and_(Job.created_at == cursor.created_at, Job.id < cursor.id)))
    for column, value in ((Job.status, status), (Job.method, method), (Job.model, model), (Job.schedule_id, schedule_id)):
        if value is not None:
            q = q.where(column == value)
    if created_after is not None:
        q = q.where(Job.created_at >= created_after)
    if created_before is not None:
        q = q.where(Job.created_at < created_before)
    for key, value in (metadata or {}).items():
        q = q.where(Job.metadata_[key].as_string() == value)
    rows = list(session.scalars(q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


EVENT_ID_MAX = 2**31 - 1  # job_events.id is a 4-byte integer: no event lies beyond it


def events_after(session: Session, job_id: str, after: int = 0, limit: int = 100) -> list[JobEvent]:
    """Events with an id above `after` (any integer a client sends: past the column's range
    there is simply nothing newer), oldest first."""
    after = min(after, EVENT_ID_MAX)
    q = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after).order_by(JobEvent.id).limit(limit)
    return list(session.scalars(q))


def terminal_event(session: Session, job_id: str) -> JobEvent | None:
    """The status event that ended the job, if it has ended (there is exactly one)."""
    job = session.get(Job, job_id)
    if job is None or job.status not in st.TERMINAL:
        return None
    q = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "status").order_by(JobEvent.id.desc())
    return session.scalars(q.limit(1)).first()


def last_succeeded(session: Session, job: Job) -> Job | None:
    """The newest succeeded job of `job`'s schedule other than itself: what a regression gate
    compares with (a gate_failed night is not a baseline: nothing of it shipped)."""
    q = (select(Job).where(Job.schedule_id == job.schedule_id, Job.id != job.id, Job.status == st.SUCCEEDED)
         .order_by(Job.finished_at.desc(), Job.id.desc()).limit(1))
    return session.scalars(q).first()


def claim(session: Session, job_id: str, owner: str, lease_seconds: float) -> bool:
    """Atomically take a queued job for `owner` (a second delivery of the same id finds it taken)."""
    now = utcnow()
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == st.QUEUED)
        .values(status=st.RUNNING, lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                attempt=Job.attempt + 1, updated_at=now,
                # a fresh attempt starts from nothing: no layer counts left over from a lost one
                progress=fresh_progress("starting"))
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken:
        job = session.get(Job, job_id)
        session.refresh(job)
        if job.started_at is None:
            job.started_at = now
        add_event(session, job, "status", {"status": st.RUNNING, "previous": st.QUEUED, "attempt": job.attempt})
    return bool(taken)
