"""The Celery child keeps one warm job process ready (a spare that has already imported torch and
pruning_core), so a job starts without paying the imports, and starts the next spare as soon as
one is taken, while the current job runs. Each job still gets a fresh process."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


class Spares:
    def __init__(self) -> None:
        self._spare: subprocess.Popen | None = None

    def _spawn(self) -> subprocess.Popen:
        env = {**os.environ, "TOPIARY_PARENT_PID": str(os.getpid())}
        # cwd = the project root so `-m worker.job_process` resolves without an install
        return subprocess.Popen([sys.executable, "-m", "worker.job_process"], stdin=subprocess.PIPE, cwd=ROOT,
                                env=env, text=True)

    def warm(self) -> None:
        """Make sure a spare exists (called when the Celery child starts and after each take)."""
        if self._spare is None or self._spare.poll() is not None:
            self._spare = self._spawn()

    def take(self) -> subprocess.Popen:
        """Hand out the warm spare (or a fresh one if it died) and start the next."""
        self.warm()
        proc, self._spare = self._spare, None
        self.warm()
        return proc

    def retire(self) -> None:
        if self._spare is not None and self._spare.poll() is None:
            self._spare.stdin.close()  # EOF: the spare exits without work
        self._spare = None


def run_job(proc: subprocess.Popen, job_id: str, owner: str, lost: Callable[[], bool]) -> int:
    """Give `job_id` to the job process and wait for it. If our lease is lost meanwhile (the
    reaper gave the job to another attempt), stop the process: SIGTERM, then SIGKILL.
    Returns the exit status (negative: killed by that signal)."""
    try:
        proc.stdin.write(json.dumps({"job_id": job_id, "owner": owner}) + "\n")
        proc.stdin.close()
    except BrokenPipeError:  # the spare died while waiting; its exit status says how
        pass
    while True:
        try:
            return proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            if lost():
                log.warning("job %s: lease lost; stopping its process", job_id)
                proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + 10
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                if proc.poll() is None:
                    proc.kill()
                return proc.wait()


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the out-of-memory killer sends this)" if -code == signal.SIGKILL else ""
        return f"the job process was killed by {name}{hint}"
    return f"the job process exited with status {code} without recording an outcome"
