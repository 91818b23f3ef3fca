"""A single-use job process: `python -m worker.job_process`.

It starts as a warm spare: it imports torch, transformers and pruning_core first (seconds), then
waits for one line of JSON on stdin, {"job_id": ..., "owner": ...}, naming a job its parent (the
Celery child) has already claimed. It runs that job to a recorded outcome and exits, so every GPU
allocation of the job goes away with it. It dies with its parent (PR_SET_PDEATHSIG), and an empty
stdin (the parent closed it or exited) ends it without work.

Exit status 0 means the outcome is in the database; anything else means the parent must record it.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from worker.lifeline import die_with_parent


def main() -> int:
    parent = int(os.environ.get("TOPIARY_PARENT_PID", os.getppid()))
    die_with_parent(parent)
    from db import logs

    logs.configure("job-process")
    # the slow imports happen while the spare is idle, not while a job waits
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from db.settings import get_settings
    from pruning_core import pipeline  # noqa: F401

    from .runner import Runner

    line = sys.stdin.readline()
    if not line.strip():
        return 0  # retired without a job
    order = json.loads(line)
    outcome = Runner(get_settings(), order["job_id"], order["owner"]).execute()
    logging.getLogger(__name__).info("job %s: %s", order["job_id"], outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
