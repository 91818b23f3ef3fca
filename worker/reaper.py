"""Sweeps run by every worker supervisor, safe to run in all of them at once (each change is a
conditional UPDATE or a uniquely-keyed INSERT):

* jobs whose lease lapsed (worker killed, machine lost) go back to queued and are re-enqueued,
  until `max_attempts`, then fail with a clear error;
* jobs still queued long after their last enqueue are enqueued again (a broker restarted without
  persistence forgets its messages; a duplicate delivery is harmless because claims are atomic);
* schedules whose next slot has come create their job (db/schedules.py), which is then enqueued.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from db import broker, jobs, schedules, status as st
from db.engine import sessionmaker_for
from db.models import Job, utcnow
from db.settings import Settings

log = logging.getLogger(__name__)
LEASED = (st.RUNNING, st.EVALUATING, st.CANCELLING)


def reap_lapsed(settings: Settings) -> list[str]:
    """Requeue (or fail) jobs whose lease expired. Returns the ids requeued."""
    requeued = []
    with sessionmaker_for(settings.db_url)() as s:
        stale = list(s.scalars(select(Job).where(Job.status.in_(LEASED), Job.lease_until < utcnow())))
        for job in stale:
            owner = job.lease_owner
            cancelling = job.status == st.CANCELLING
            # conditional: only if nobody renewed or finished it since we looked
            still = s.execute(update(Job).where(Job.id == job.id, Job.lease_owner == owner, Job.lease_until < utcnow())
                              .values(lease_owner=None, lease_until=None)).rowcount
            if not still:
                continue
            s.refresh(job)
            if cancelling:
                jobs.transition(s, job, st.CANCELLED, error=("cancelled", "cancelled; its worker stopped"))
            elif job.attempt >= job.max_attempts:
                jobs.transition(s, job, st.FAILED, error=("worker-lost", f"the worker stopped responding on all {job.attempt} attempts"))
            else:
                jobs.transition(s, job, st.QUEUED)
                job.enqueued_at = utcnow()
                requeued.append(job.id)
        s.commit()
    for job_id in requeued:
        log.warning("job %s lost its worker; requeued", job_id)
        broker.enqueue(settings, job_id)
    return requeued


def ring_again(settings: Settings) -> list[str]:
    """Re-enqueue jobs queued for longer than requeue_after_seconds since their last enqueue."""
    cutoff = utcnow() - timedelta(seconds=settings.requeue_after_seconds)
    with sessionmaker_for(settings.db_url)() as s:
        ids = list(s.scalars(select(Job.id).where(Job.status == st.QUEUED, Job.enqueued_at < cutoff)))
        if ids:
            s.execute(update(Job).where(Job.id.in_(ids), Job.status == st.QUEUED).values(enqueued_at=utcnow()))
            s.commit()
    for job_id in ids:
        broker.enqueue(settings, job_id)
    return ids


def fire_schedules(settings: Settings) -> list[str]:
    """Create and enqueue the jobs of due schedules."""
    with sessionmaker_for(settings.db_url)() as s:
        created = schedules.fire_due(s)
    for job_id in created:
        log.info("schedule fired job %s", job_id)
        broker.enqueue(settings, job_id)
    return created
