"""Databases for service tests: a fresh PostgreSQL database per test session on the real server
(127.0.0.1:5432 unless TOPIARY_TEST_PG_ADMIN_URL says otherwise), and a SQLite file."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from db import status as st

ROOT = Path(__file__).resolve().parents[1]
# the minimal job body
MINIMAL = {"model": "smollm2-135m", "method": "wanda", "sparsity": 0.5,
           "calibration": {"source": "c4", "nsamples": 4, "seqlen": 64, "seed": 0},
           "evaluation": {"datasets": ["wikitext2"], "limit": 2}}
# the worker tests' tiny job, and one slow enough to interrupt: PGZ with many Lion iterations
BODY = {"method": "wanda", "sparsity": 0.5, "calibration": {"source": "c4", "nsamples": 4, "seqlen": 32, "seed": 0},
        "evaluation": {"datasets": ["wikitext2"], "limit": 2}, "device": "cpu"}
SLOW = {**BODY, "method": "pgz", "options": {"iters": 400, "patience": 400, "tol": 0.0}}
PG_ADMIN = os.environ.get("TOPIARY_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def postgres_database():
    """Create an isolated database, yield its SQLAlchemy URL, drop it afterwards."""
    import psycopg

    name = f"topiary_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alembic(url: str, *args: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    getattr(command, args[0])(cfg, *args[1:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """API server + worker supervisor as subprocesses sharing one environment."""

    def __init__(self, tmp: Path, db_url: str, broker_url: str, model_root: Path, **extra_env: str):
        self.port = free_port()
        self.env = {**os.environ, "TOPIARY_HOME": str(tmp), "TOPIARY_DATABASE_URL": db_url,
                    "TOPIARY_BROKER_URL": broker_url, "TOPIARY_TASK_QUEUE": f"q-{secrets.token_hex(4)}",
                    "TOPIARY_ALLOWED_MODEL_ROOTS": json.dumps([str(model_root)]), "TOPIARY_LEASE_SECONDS": "4",
                    "TOPIARY_REAPER_INTERVAL_SECONDS": "1", "TOPIARY_REQUEUE_AFTER_SECONDS": "3",
                    "TOPIARY_WORKER_METRICS_PORT": str(free_port()), "TOPIARY_WORKER_HEARTBEAT_SECONDS": "1",
                    "TOPIARY_WORKER_STALE_SECONDS": "3", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra_env}
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)
        self.api = self._spawn("api", [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
                                       "--port", str(self.port), "--log-level", "warning"])
        self.worker = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self._wait_ready()
        self.tenant = f"tenant-{secrets.token_hex(3)}"
        self.http.headers.update(self.key_headers(["jobs:read", "jobs:write"]))

    def key_headers(self, scopes: list[str], tenant: str | None = None) -> dict[str, str]:
        """Authorization for a fresh key of this service's tenant (or another)."""
        from db import keys
        from db.engine import sessionmaker_for

        with sessionmaker_for(self.env["TOPIARY_DATABASE_URL"])() as s:
            _, key = keys.create_key(s, tenant or self.tenant, scopes)
            s.commit()
        return {"Authorization": f"Bearer {key}"}

    def _spawn(self, name, cmd):
        with open(self.logs / f"{name}-{time.time_ns()}.log", "w") as log:  # the child keeps its own descriptor
            return subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"API did not start: {self.log_text()}")

    @staticmethod
    def worker_cmd() -> list[str]:
        return [sys.executable, "-m", "topiary.cli", "worker", "--device", "cpu"]

    def start_worker(self):
        self.worker = self._spawn("worker", self.worker_cmd())

    def live_workers(self, n: int = 1, timeout: float = 60) -> list[dict]:
        """GET /v1/workers (with an admin key) once it lists `n` workers."""
        admin = self.key_headers(["admin"])
        deadline = time.monotonic() + timeout
        while len(rows := self.http.get("/v1/workers", headers=admin).json()["data"]) != n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(rows)} live workers, not {n}\n{self.log_text()}")
            time.sleep(0.3)
        return rows

    def kill_worker(self):
        os.killpg(self.worker.pid, signal.SIGKILL)  # supervisor, celery parent and the job's child
        self.worker.wait()

    def job_processes(self) -> list[int]:
        """Pids of this service's job processes (the running one and the warm spare), found in
        /proc by their command line and this service's TOPIARY_HOME."""
        mine = f"TOPIARY_HOME={self.env['TOPIARY_HOME']}".encode()
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                if (proc.name.isdigit() and b"worker.job_process" in (proc / "cmdline").read_bytes()
                        and mine in (proc / "environ").read_bytes().split(b"\0")):
                    pids.append(int(proc.name))
            except OSError:  # exited while we looked
                continue
        return pids

    def submit(self, model: str, body: dict) -> str:
        r = self.http.post("/v1/jobs", json={**body, "model": model})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def register(self, name: str, **source) -> None:
        assert self.http.post("/v1/models", json={"name": name, **source}).status_code == 201

    def job(self, job_id):
        return self.http.get(f"/v1/jobs/{job_id}").json()

    def wait(self, job_id, statuses=tuple(st.TERMINAL), timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.3)
        raise TimeoutError(f"{job_id} still {self.job(job_id)['status']}\n{self.log_text()}")

    def fire(self, schedule_id: str, seen: set[str]) -> dict:
        """Make the schedule due now, at a slot of its own (a yearly cron one month later each
        time: a slot fires once), let the supervisor fire it, and wait for the job to end.
        `seen`: the schedule's jobs so far (the new one is added)."""
        from datetime import datetime, timedelta

        from db.engine import sessionmaker_for
        from db.models import Schedule

        with sessionmaker_for(self.env["TOPIARY_DATABASE_URL"])() as s:
            schedule = s.get(Schedule, schedule_id)
            schedule.cron = f"0 0 1 {len(seen) + 1} *"
            schedule.next_fire_at = datetime.now(UTC) - timedelta(seconds=1)
            s.commit()
        deadline = time.monotonic() + 60
        while not (new := [j for j in self.http.get(f"/v1/jobs?schedule_id={schedule_id}").json()["data"]
                           if j["id"] not in seen]):
            assert time.monotonic() < deadline, self.log_text()
            time.sleep(0.3)
        seen.add(new[0]["id"])
        return self.wait(new[0]["id"])

    def wait_layers(self, job_id, n, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.job(job_id)["progress"].get("layers_done") or 0) >= n:
                return
            time.sleep(0.2)
        raise TimeoutError(self.log_text())

    def log_text(self):
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.logs.iterdir()))

    def close(self):
        for proc in (self.worker, self.api):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.http.close()


class Receiver:
    """A real HTTP server that answers 500 to the first `fail_first` requests of each message
    (set `fail_first` later to change its mind)."""

    def __init__(self, fail_first: int = 1):
        self.requests, self.fail_first, self.seen = [], fail_first, {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                msg = self.headers["webhook-id"]
                outer.seen[msg] = outer.seen.get(msg, 0) + 1
                code = 500 if outer.seen[msg] <= outer.fail_first else 204
                outer.requests.append((dict(self.headers), body, code))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
