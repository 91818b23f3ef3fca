"""Celery worker application: `celery -A worker.celery_app worker -Q gpu -c 1` (what `topiary
worker` runs). Late acknowledgement, prefetch 1, and nothing that imports torch in the Celery
processes: the long-lived pool child claims the job row and holds its lease, and the work runs in
a fresh, single-use job process (worker.job_process), so all GPU memory is returned at its exit.
A warm spare job process waits with its imports done, so a claimed job starts at once."""

from __future__ import annotations

import logging
import os
import socket

from celery.signals import setup_logging, worker_process_init, worker_process_shutdown

from db import logs
from db.broker import TASK_NAME, celery_app
from db.engine import sessionmaker_for
from db.settings import get_settings

from .lifeline import die_with_parent
from .registry import Registration
from .runner import Heartbeat, Runner
from .spare import Spares, describe_exit, run_job

log = logging.getLogger(__name__)
settings = get_settings()
app = celery_app(settings)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,  # a killed child's message goes back; the claim makes it harmless
    worker_prefetch_multiplier=1,
    worker_concurrency=1,
    # the job's lease lives in the database, not in the broker connection: a broker restart must
    # not kill the running job (its message is redelivered later and finds the job taken)
    worker_cancel_long_running_tasks_on_connection_loss=False,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # ride out broker restarts
    task_default_queue=settings.task_queue,
)


spares = Spares()
registration: Registration | None = None  # the pool child's row in the worker registry


@worker_process_init.connect
def _child_init(**_kwargs) -> None:
    """A forked child dies with the Celery parent, must not reuse the parent's pooled database
    connections, and starts warming its first job process right away."""
    global registration
    die_with_parent(os.getppid())
    sessionmaker_for.cache_clear()
    spares.warm()
    registration = Registration(settings)
    registration.start()


@worker_process_shutdown.connect
def _child_exit(**_kwargs) -> None:
    if registration is not None:
        registration.close()


@setup_logging.connect
def _logging(**_kwargs) -> None:
    """Our log setup instead of Celery's: the job id on every line, TOPIARY_LOG_FORMAT=json."""
    logs.configure("worker")


@app.task(name=TASK_NAME, bind=True)
def run_prune_job(self, job_id: str) -> str:
    with logs.bound(job_id=job_id):
        return _run(self, job_id)


def _run(self, job_id: str) -> str:
    owner = f"{socket.gethostname()}:{os.getpid()}:{self.request.id}"
    runner = Runner(settings, job_id, owner)
    job = runner.claim()
    if job is None:
        return "skipped"
    heartbeat = Heartbeat(settings, job_id, owner)
    heartbeat.start()
    if registration is not None:
        registration.working(job_id)
    try:
        code = run_job(spares.take(), job_id, owner, heartbeat.lost.is_set)
    finally:
        heartbeat.stop.set()
        if registration is not None:
            registration.working(None)
    if code != 0 and not heartbeat.lost.is_set() and runner.record_crash(job.attempt, describe_exit(code)):
        log.error("job %s: %s", job_id, describe_exit(code))
        return "crashed"
    return "done"
