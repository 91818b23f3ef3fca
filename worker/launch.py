"""Process supervision for `topiary worker` and `topiary serve`.

`topiary worker --gpus 0,1` starts one Celery worker process per GPU, each pinned with
CUDA_VISIBLE_DEVICES; `--device cpu` starts one for the CPU. The supervisor itself runs the reaper
(lease expiry, re-enqueueing lost jobs), fires due schedules, delivers webhooks (a thread), and
stops its children on SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import Optional

from db.settings import get_settings

from .reaper import fire_schedules, reap_lapsed, ring_again
from .webhooks import Deliverer

log = logging.getLogger(__name__)


# progress bars of model loading/saving belong on a terminal, not in worker logs
QUIET = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}


def worker_commands(gpus: Optional[list[int]], device: str, loglevel: str = "WARNING") -> list[tuple[list[str], dict]]:
    queue = get_settings().task_queue
    base = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", queue, "-c", "1",
            "-P", "prefork", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if gpus:
        return [(base + [f"--hostname=gpu{g}@%h"], {**QUIET, "CUDA_VISIBLE_DEVICES": str(g), "TOPIARY_WORKER_DEVICE": "cuda"})
                for g in gpus]
    return [(base + [f"--hostname={device}@%h"], {**QUIET, "TOPIARY_WORKER_DEVICE": device})]


def supervise(commands: list[tuple[list[str], dict]]) -> int:
    """Start every command, run the reaper until a child exits or we are told to stop."""
    settings = get_settings()
    children = [subprocess.Popen(cmd, env={**os.environ, **env}) for cmd, env in commands]
    deliverer = Deliverer(settings)
    deliverer.start()
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    next_sweep = 0.0
    try:
        while not stopping and all(c.poll() is None for c in children):
            if time.monotonic() >= next_sweep:
                try:
                    reap_lapsed(settings)
                    ring_again(settings)
                    fire_schedules(settings)
                except Exception:  # noqa: BLE001 - database restarting: next round
                    log.warning("reaper round failed", exc_info=True)
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
