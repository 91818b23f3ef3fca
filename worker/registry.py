"""This worker process in the registry (db/workers.py): what it runs on, found without torch (the
Celery child never imports it), and a heartbeat thread that keeps the row fresh and names the job
in hand."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
from importlib import metadata
from typing import Any

from db import workers
from db.engine import sessionmaker_for
from db.metrics import worker_name
from db.settings import Settings

log = logging.getLogger(__name__)


def gpu() -> tuple[str | None, int | None]:
    """(name, total memory in bytes) of this process's GPU (the first of CUDA_VISIBLE_DEVICES),
    from nvidia-smi; (None, None) without one."""
    index = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    if not index or index == "-1":
        return None, None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits",
                              "-i", index], capture_output=True, text=True, timeout=10, check=True).stdout
        name, mib = out.strip().splitlines()[0].rsplit(",", 1)
        return name.strip(), int(float(mib)) * (1 << 20)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None, None


def describe(settings: Settings) -> dict[str, Any]:
    gpu_name, gpu_bytes = gpu()
    device = settings.worker_device
    if device == "auto":  # what the job process will pick: a GPU if there is one
        device = "cuda" if gpu_name else "cpu"
    try:
        version = metadata.version("topiary")
    except metadata.PackageNotFoundError:
        version = "unknown"
    host = socket.gethostname()
    return {"id": f"{host}:{os.getpid()}", "name": worker_name(), "host": host, "pid": os.getpid(),
            "queue": settings.task_queue, "device": device, "gpu_name": gpu_name if device == "cuda" else None,
            "gpu_memory_bytes": gpu_bytes if device == "cuda" else None,
            "host_memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "cpus": len(os.sched_getaffinity(0)), "version": version}


class Registration(threading.Thread):
    """Registers this process, then beats every `worker_heartbeat_seconds` until stopped (and
    removes the row then). `current` is the job in hand; `working(job_id)` beats at once."""

    def __init__(self, settings: Settings):
        super().__init__(daemon=True, name="worker-registry")
        self.settings = settings
        self.info = describe(settings)
        self.current: str | None = None
        self.stop = threading.Event()
        self._wake = threading.Event()

    def _session(self):
        return sessionmaker_for(self.settings.db_url)()

    def working(self, job_id: str | None) -> None:
        self.current = job_id
        self._wake.set()

    def run(self) -> None:
        registered = False
        while not self.stop.is_set():
            try:
                with self._session() as s:
                    if not registered or not workers.beat(s, self.info["id"], self.current):
                        workers.register(s, {**self.info, "current_job_id": self.current})
                        registered = True
            except Exception:  # a database blip: the next beat tries again
                log.warning("worker heartbeat failed", exc_info=True)
            self._wake.wait(self.settings.worker_heartbeat_seconds)
            self._wake.clear()

    def close(self) -> None:
        self.stop.set()
        self._wake.set()
        try:
            with self._session() as s:
                workers.remove(s, self.info["id"])
        except Exception:  # the row will lapse instead
            log.warning("could not remove the worker row", exc_info=True)
