"""Process supervision for `topiary worker` and `topiary serve`.

`topiary worker --gpus 0,1` starts one Celery worker process per GPU, each pinned with
CUDA_VISIBLE_DEVICES; `--device cpu` starts one for the CPU. The supervisor itself runs the reaper
(lease expiry, re-enqueueing lost jobs), fires due schedules, delivers webhooks (a thread), and
stops its children on SIGINT/SIGTERM; they die with it if it is killed. It also serves the Prometheus
metrics of all its processes (db.metrics) on TOPIARY_WORKER_METRICS_PORT.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from db import metrics
from db.settings import get_settings

from .lifeline import child_dies_with_us
from .reaper import sweep
from .webhooks import Deliverer

log = logging.getLogger(__name__)


# progress bars of model loading/saving belong on a terminal, not in worker logs
QUIET = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}


def worker_commands(gpus: list[int] | None, device: str, loglevel: str = "WARNING") -> list[tuple[list[str], dict]]:
    queue = get_settings().task_queue
    base = [sys.executable, "-m", "celery", "--quiet", "-A", "worker.celery_app", "worker", "-Q", queue, "-c", "1",
            "-P", "prefork", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if gpus:
        return [(base + [f"--hostname=gpu{g}@%h"], {**QUIET, "CUDA_VISIBLE_DEVICES": str(g), "TOPIARY_WORKER_DEVICE": "cuda",
                                                     "TOPIARY_WORKER_NAME": f"gpu{g}"}) for g in gpus]
    return [(base + [f"--hostname={device}@%h"], {**QUIET, "TOPIARY_WORKER_DEVICE": device, "TOPIARY_WORKER_NAME": device})]


def _wait_ready(url: str, child: subprocess.Popen, timeout: float = 120.0) -> bool:
    """True once `url` answers 200; False if `child` exits first (its port taken, say) or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return child.poll() is None
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def supervise(commands: list[tuple[list[str], dict]], ready_url: str | None = None) -> int:
    """Start every command, run the sweeps until a child exits or we are told to stop. Children
    die with us (PR_SET_PDEATHSIG). With `ready_url`, the first command (the API) must answer it
    before the others (workers, which claim jobs) start: a restart that cannot serve claims nothing."""
    with metrics.MultiprocessArea():
        return _supervise(commands, ready_url)


def _supervise(commands: list[tuple[list[str], dict]], ready_url: str | None) -> int:
    settings = get_settings()
    def start(cmd: list[str], env: dict, drop: tuple[str, ...] = ()) -> subprocess.Popen:
        merged = {k: v for k, v in {**os.environ, **env}.items() if k not in drop}
        return subprocess.Popen(cmd, env=merged, preexec_fn=child_dies_with_us())

    metrics.serve(settings.worker_metrics_port)
    children = []
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deliverer = Deliverer(settings)
    try:
        if ready_url is not None:
            # the API serves its own /metrics: it stays out of the workers' shared metrics area
            children.append(start(*commands[0], drop=(metrics.MULTIPROC_ENV,)))
            if not _wait_ready(ready_url, children[0]):
                log.error("the API did not come up at %s; no worker started", ready_url)
                return 1
            commands = commands[1:]
        children += [start(cmd, env) for cmd, env in commands]
        deliverer.start()
        next_sweep = 0.0
        while not stopping and all(c.poll() is None for c in children):
            if time.monotonic() >= next_sweep:
                sweep(settings)
                next_sweep = time.monotonic() + settings.reaper_interval_seconds
            time.sleep(0.2)
    finally:
        deliverer.stop.set()
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for c in children:
            try:
                c.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.kill()
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    return 0 if stopping or not failed else 1
