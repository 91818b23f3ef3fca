"""The Celery application shared by the API (sends job ids by task name) and the workers.
Redis when TOPIARY_BROKER_URL says so, else kombu's filesystem transport under $TOPIARY_HOME.
The broker is a doorbell: the database stays the source of truth."""

from __future__ import annotations

import functools
import logging

from celery import Celery

from . import catalog
from .settings import Settings

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _app(broker: str) -> Celery:
    app = Celery("topiary", broker=broker)
    options: dict = {"visibility_timeout": 7 * 24 * 3600}  # jobs are leased in the database instead
    if broker.startswith("filesystem://"):
        folder = broker[len("filesystem://"):]
        from pathlib import Path

        for sub in ("queue", "processed", "control"):
            (Path(folder) / sub).mkdir(parents=True, exist_ok=True)
        # control_folder defaults to "control" under the current directory: keep it with the rest
        options = {"data_folder_in": f"{folder}/queue", "data_folder_out": f"{folder}/queue",
                   "processed_folder": f"{folder}/processed", "store_processed": False,
                   "control_folder": f"{folder}/control",
                   "polling_interval": 0.1}  # a directory listing 10×/s: a job waits 0.1 s, not 1 s
        broker = "filesystem://"
        app.conf.broker_url = broker
    app.conf.broker_transport_options = options
    app.conf.task_acks_late = True
    app.conf.worker_prefetch_multiplier = 1
    app.conf.task_default_queue = "gpu"
    return app


def celery_app(settings: Settings) -> Celery:
    return _app(settings.broker)


def enqueue(settings: Settings, job_id: str) -> bool:
    """Ring the bell for `job_id`. A broker outage is not the caller's failure: the job stays
    queued in the database and is re-enqueued later, so this only logs."""
    try:
        celery_app(settings).send_task(catalog.TASK_NAME, args=[job_id], queue=settings.task_queue)
        return True
    except Exception:  # noqa: BLE001 - any broker error; the row is safe
        log.warning("could not enqueue %s; it stays queued in the database", job_id, exc_info=True)
        return False
