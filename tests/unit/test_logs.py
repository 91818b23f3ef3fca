"""db.logs: every line carries the context it was written in, as text or as JSON."""

import json
import logging
import subprocess
import sys


def run_logging(fmt: str) -> list[str]:
    code = ("import logging; from db import logs; logs.configure('worker'); "
            "log = logging.getLogger('worker.runner')\n"
            "with logs.bound(job_id='pj_1', attempt=2):\n    log.warning('claimed %s', 'it')\n"
            "log.warning('outside')\n"
            "logging.getLogger('topiary.access').info('GET / 200', extra={'fields': {'status': 200}})\n"
            "logging.getLogger('noisy').info('below the level')\n")
    env = {"TOPIARY_LOG_FORMAT": fmt, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr.strip().splitlines()


def test_text_lines_carry_the_bound_context():
    lines = run_logging("text")
    assert len(lines) == 3  # INFO is below the default level, except for the access log
    assert lines[0].endswith("WARNING worker worker.runner: claimed it [job_id=pj_1 attempt=2]")
    assert lines[1].endswith("worker.runner: outside")
    assert lines[2].endswith("topiary.access: GET / 200 [status=200]")


def test_json_lines_are_one_object_each():
    lines = [json.loads(line) for line in run_logging("json")]
    assert lines[0]["job_id"] == "pj_1" and lines[0]["attempt"] == 2 and lines[0]["message"] == "claimed it"
    assert lines[0]["process"] == "worker" and lines[0]["level"] == "WARNING" and lines[0]["ts"].endswith("Z")
    assert "job_id" not in lines[1]
    assert lines[2]["logger"] == "topiary.access" and lines[2]["status"] == 200
    assert logging.getLevelName(lines[2]["level"]) == logging.INFO
