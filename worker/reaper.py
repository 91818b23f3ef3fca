"""Sweeps run by every worker supervisor, safe to run in all of them at once (each change is a
compare-and-set UPDATE or a uniquely-keyed INSERT), and each isolated from the others' failures:

* jobs whose lease lapsed (worker killed, machine lost) go back to queued and are re-enqueued,
  until `max_attempts`, then fail with a clear error;
* jobs still queued long after their last enqueue are enqueued again, but only those the broker
  no longer holds (a broker restarted without persistence forgets its messages; one that merely
  has a long queue must not get a copy per sweep);
* schedules whose next slot has come create their job (db/schedules.py), which is then enqueued;
* the disk of dead attempts (work directories, half-published staging directories) is freed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from datetime import timedelta

from sqlalchemy import select, update

from db import broker, jobs, schedules, workers
from db import status as st
from db.artifacts import store_for
from db.engine import sessionmaker_for
from db.models import Job, utcnow
from db.settings import Settings

from .convert import parse_work_dir, work_root

log = logging.getLogger(__name__)
LEASED = (st.RUNNING, st.EVALUATING, st.CANCELLING)


def ring(settings: Settings, job_ids: Iterable[str]) -> list[str]:
    """Enqueue those of `job_ids` that the broker does not already hold ready for a worker.
    Returns the ids sent."""
    held = broker.held_job_ids(settings)
    sent = [j for j in job_ids if held is None or j not in held]
    for job_id in sent:
        broker.enqueue(settings, job_id)
    return sent


def reap_lapsed(settings: Settings) -> list[str]:
    """Requeue (or fail) jobs whose lease expired. Returns the ids requeued."""
    requeued, ended = [], []
    with sessionmaker_for(settings.db_url)() as s:
        now = utcnow()
        stale = list(s.scalars(select(Job).where(Job.status.in_(LEASED), Job.lease_until < now)))
        for job in stale:
            # only if nobody renewed, finished or reaped it since we looked
            held = [Job.lease_owner == job.lease_owner, Job.lease_until < now]
            try:
                if job.status == st.CANCELLING:
                    jobs.transition(s, job, st.CANCELLED, error=("cancelled", "cancelled; its worker stopped"),
                                    where=held, lease_owner=None)
                    ended.append(job.id)
                elif job.attempt >= job.max_attempts:
                    jobs.transition(s, job, st.FAILED, where=held, lease_owner=None, error=(
                        "worker-lost", f"the worker stopped responding on all {job.attempt} attempts"))
                    ended.append(job.id)
                else:
                    jobs.transition(s, job, st.QUEUED, where=held, lease_owner=None, enqueued_at=now)
                    requeued.append(job.id)
            except jobs.Conflict:
                continue
        s.commit()
    store = store_for(settings)
    for job_id in ended:  # nothing of theirs was committed: drop any half-published files
        store.delete_prefix(f"jobs/{job_id}")
    for job_id in requeued:
        log.warning("job %s lost its worker; requeued", job_id)
    ring(settings, requeued)
    return requeued


def ring_again(settings: Settings) -> list[str]:
    """Re-enqueue jobs queued for longer than requeue_after_seconds since their last enqueue and
    missing from the broker. The enqueue time is moved first, by a conditional UPDATE, so of
    several supervisors only one rings for a job."""
    cutoff = utcnow() - timedelta(seconds=settings.requeue_after_seconds)
    with sessionmaker_for(settings.db_url)() as s:
        due = list(s.scalars(select(Job.id).where(Job.status == st.QUEUED, Job.enqueued_at < cutoff)))
        if not due:
            return []
        ids = list(s.scalars(update(Job).where(Job.id.in_(due), Job.status == st.QUEUED, Job.enqueued_at < cutoff)
                             .values(enqueued_at=utcnow()).returning(Job.id)
                             .execution_options(synchronize_session=False)))
        s.commit()
    return ring(settings, ids)


def fire_schedules(settings: Settings) -> list[str]:
    """Create and enqueue the jobs of due schedules."""
    with sessionmaker_for(settings.db_url)() as s:
        created = schedules.fire_due(s)
    for job_id in created:
        log.info("schedule fired job %s", job_id)
        broker.enqueue(settings, job_id)
    return created


def free_dead_attempts(settings: Settings) -> list[str]:
    """Delete this host's work directories of attempts that are no longer live (the job moved
    on, ended or is gone), the artifact store's staging directories of jobs no worker holds, and
    the resume state of jobs that ended (a queued job keeps it: its retry resumes from it). A
    live attempt is one whose job is leased with that attempt number. Returns what it removed."""
    root = work_root(settings)
    dirs = {p: parse_work_dir(p) for p in root.iterdir()} if root.is_dir() else {}
    store = store_for(settings)
    staged, kept = store.staging_dirs("jobs"), store.work_areas()
    ids = {ref[0] for ref in dirs.values() if ref} | set(staged.values()) | set(kept.values())
    if not ids:
        return []
    with sessionmaker_for(settings.db_url)() as s:
        rows = list(s.execute(select(Job.id, Job.attempt, Job.status).where(Job.id.in_(ids))))
    live = {(job_id, attempt) for job_id, attempt, status in rows if status in LEASED}
    leased = {job_id for job_id, _ in live}
    waiting = leased | {job_id for job_id, _, status in rows if status == st.QUEUED}
    dead = [p for p, ref in dirs.items() if ref is None or ref not in live]
    dead += [p for p, job_id in staged.items() if job_id not in leased]
    dead += [p for p, job_id in kept.items() if job_id not in waiting]  # resume state of a job that ended
    for path in dead:
        shutil.rmtree(path, ignore_errors=True)
    return [str(p) for p in dead]


def forget_dead_workers(settings: Settings) -> list:
    """Registry rows of workers long dead (their heartbeat lapsed many stale periods ago)."""
    with sessionmaker_for(settings.db_url)() as s:
        return [workers.forget_dead(s, settings.worker_stale_seconds)]


SWEEPS: tuple[Callable[[Settings], list], ...] = (reap_lapsed, ring_again, fire_schedules, free_dead_attempts,
                                                  forget_dead_workers)


def sweep(settings: Settings) -> dict[str, str]:
    """One round of every sweep, each on its own: one that fails (a database restarting, a bad
    row) is logged and stops none of the others. Returns the failures by sweep name."""
    failed = {}
    for fn in SWEEPS:
        try:
            fn(settings)
        except Exception as exc:  # broad on purpose: logged, and the next round tries again
            log.warning("sweep %s failed", fn.__name__, exc_info=True)
            failed[fn.__name__] = f"{type(exc).__name__}: {exc}"
    return failed
