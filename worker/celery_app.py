"""Celery worker application: `celery -A worker.celery_app worker -Q gpu -c 1` (what `topiary
worker` runs). Late acknowledgement, prefetch 1, a fresh child process per job (all GPU memory
returned at exit), and nothing that touches CUDA in the parent: pruning_core is imported inside
the task only."""

from __future__ import annotations

import logging
import os
import socket

from celery.signals import worker_process_init

from db import catalog
from db.broker import celery_app
from db.engine import sessionmaker_for
from db.settings import get_settings

from .runner import Runner

log = logging.getLogger(__name__)
settings = get_settings()
app = celery_app(settings)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,  # a killed child's message goes back; the claim makes it harmless
    worker_prefetch_multiplier=1,
    worker_max_tasks_per_child=1,
    worker_concurrency=1,
    worker_cancel_long_running_tasks_on_connection_loss=True,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # ride out broker restarts
    task_default_queue=settings.task_queue,
)


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:
    """A forked child must not reuse the parent's pooled database connections."""
    sessionmaker_for.cache_clear()


@app.task(name=catalog.TASK_NAME, bind=True)
def run_prune_job(self, job_id: str) -> str:
    owner = f"{socket.gethostname()}:{os.getpid()}:{self.request.id}"
    return Runner(settings, job_id, owner).run()
