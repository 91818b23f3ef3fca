"""The Celery application shared by the API (sends job ids by task name) and the workers.
Redis when TOPIARY_BROKER_URL says so, else kombu's filesystem transport under $TOPIARY_HOME.
The broker is a doorbell: the database stays the source of truth."""

from __future__ import annotations

import base64
import functools
import json
import logging

from celery import Celery

from .settings import Settings

log = logging.getLogger(__name__)

TASK_NAME = "topiary.run_prune_job"  # the API enqueues by name: it never imports the worker


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


def _job_id(raw: bytes) -> str | None:
    """The job id a Celery (protocol 2) message carries: body = base64(JSON [args, kwargs, embed])."""
    try:
        message = json.loads(raw)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return args[0] if args and isinstance(args[0], str) else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def held_job_ids(settings: Settings) -> set[str] | None:
    """Ids of the job messages waiting in the broker's queue for a worker (not those already
    delivered), or None when this broker cannot be inspected (then callers fall back to time).
    Redis: the queue's lists (kombu keeps one per priority step); filesystem: the queue folder."""
    url, queue = settings.broker, settings.task_queue
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_timeout=5)
            try:
                names = [queue] + [f"{queue}\x06\x16{p}" for p in range(1, 10)]
                raws = [raw for name in names for raw in client.lrange(name, 0, -1)]
            finally:
                client.close()
        elif url.startswith("filesystem://"):
            from pathlib import Path

            folder = Path(url[len("filesystem://"):]) / "queue"
            raws = []
            for path in folder.glob(f"*.{queue}.msg"):
                try:
                    raws.append(path.read_bytes())
                except FileNotFoundError:  # taken by a worker while we listed
                    continue
        else:
            return None
    except Exception:
        log.warning("could not list the broker's queue", exc_info=True)
        return None
    return {job_id for job_id in map(_job_id, raws) if job_id}


def enqueue(settings: Settings, job_id: str) -> bool:
    """Ring the bell for `job_id`. A broker outage is not the caller's failure: the job stays
    queued in the database and is re-enqueued later, so this only logs."""
    try:
        celery_app(settings).send_task(TASK_NAME, args=[job_id], queue=settings.task_queue)
        return True
    except Exception:
        log.warning("could not enqueue %s; it stays queued in the database", job_id, exc_info=True)
        return False
