"""Soak test of the service's exactly-once promise (not CI): small jobs through the real API,
Celery workers, Redis and PostgreSQL (private servers on free ports) while, at random, worker
supervisors and job processes are SIGKILLed, Redis and PostgreSQL restart and cancels race each
other. Then it checks the invariants and prints the counts.

    .venv/bin/python bench/soak.py                       # 100 jobs, 20 minutes of faults
    .venv/bin/python bench/soak.py --jobs 20 --minutes 3 # a short run

Invariants: every job ends terminal; exactly one terminal status event per job; a succeeded job
has one artifact set (report, masks, model; no name twice) and any other job none; the Redis
queue never holds more messages than queued jobs + workers (sampled every second); no work or
staging directory is left once every job has ended. Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import print_table, write_json
from job_queue import tiny_model
from servers import OwnPostgres, OwnRedis

from service_fixtures import Service, alembic

TERMINAL = ("succeeded", "failed", "cancelled")
# small jobs; every other one slow enough (PGZ) that workers stay busy and faults catch jobs
# mid-block (then a retry resumes at its first unfinished block)
QUICK = {"method": "wanda", "sparsity": 0.5, "calibration": {"source": "c4", "nsamples": 2, "seqlen": 16, "seed": 0},
         "evaluation": {"datasets": ["wikitext2"], "limit": 1}, "device": "cpu"}
SLOW = {**QUICK, "method": "pgz", "options": {"iters": 300, "patience": 300, "tol": 0.0}}


class Soak:
    def __init__(self, args, tmp: Path):
        self.args, self.rng = args, random.Random(args.seed)
        self.pg, self.redis = OwnPostgres(), OwnRedis()
        alembic(self.pg.url, "upgrade", "head")
        # 4 blocks: a retry has blocks to resume from
        self.svc = Service(tmp, self.pg.url, self.redis.url, tiny_model(tmp, layers=4), TOPIARY_LEASE_SECONDS="6",
                           TOPIARY_REQUEUE_AFTER_SECONDS="5", TOPIARY_MAX_ATTEMPTS="5")
        self.svc.register("tiny", path=str(tmp / "tiny"))
        self.home, self.queue = tmp, self.svc.env["TOPIARY_TASK_QUEUE"]
        self.workers = [self.svc._spawn("worker", self.svc.worker_cmd()) for _ in range(args.workers)]
        self.jobs: list[str] = []
        self.faults = Counter()
        self.queue_samples: list[tuple[int, int]] = []  # (queue length, queued jobs)
        self.stop = threading.Event()

    # -- faults ---------------------------------------------------------------------------------
    def kill_worker(self) -> None:
        i = self.rng.randrange(len(self.workers))
        os.killpg(self.workers[i].pid, signal.SIGKILL)
        self.workers[i].wait()
        time.sleep(self.rng.uniform(0, 8))  # the lease lapses while it is down, or not
        self.workers[i] = self.svc._spawn("worker", self.svc.worker_cmd())

    def kill_job_process(self) -> None:
        pids = self.svc.job_processes()
        if pids:
            os.kill(self.rng.choice(pids), signal.SIGKILL)
            return
        self.faults["kill_job_process_none_running"] += 1

    def restart_redis(self) -> None:
        self.redis.restart(down_seconds=self.rng.uniform(0.5, 4))

    def restart_postgres(self) -> None:
        self.pg.restart(down_seconds=self.rng.uniform(0.5, 4))

    def race_cancels(self) -> None:
        live = [j for j in self.jobs[-20:] if self._get(j).get("status") not in TERMINAL]
        if not live:
            return
        job_id = self.rng.choice(live)
        threads = [threading.Thread(target=self._post, args=(f"/v1/jobs/{job_id}/cancel",)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # -- plumbing -------------------------------------------------------------------------------
    def _get(self, path_or_id: str) -> dict:
        path = path_or_id if path_or_id.startswith("/") else f"/v1/jobs/{path_or_id}"
        for _ in range(60):  # the database may be restarting: 503 and Retry-After
            try:
                r = self.svc.http.get(path)
                if r.status_code == 200:
                    return r.json()
            except Exception:  # noqa: BLE001, S110 - a connection reset during a restart
                pass
            time.sleep(1)
        raise RuntimeError(f"GET {path} kept failing")

    def _post(self, path: str, **kwargs):
        for _ in range(60):
            try:
                r = self.svc.http.post(path, **kwargs)
                if r.status_code < 500 and r.status_code != 409 or "cancel" in path:
                    return r
            except Exception:  # noqa: BLE001, S110 - the same: retried below
                pass
            time.sleep(1)
        raise RuntimeError(f"POST {path} kept failing")

    def sample_queue(self) -> None:
        import redis

        while not self.stop.wait(1.0):
            try:
                length = redis.Redis.from_url(self.redis.url, socket_timeout=2).llen(self.queue)
                queued = len(self._get("/v1/jobs?status=queued&limit=100")["data"])
            except Exception:  # noqa: BLE001, S112 - restarting: skip this sample
                continue
            self.queue_samples.append((length, queued))

    def submit_all(self, seconds: float) -> None:
        for i in range(self.args.jobs):
            body = {**(SLOW if i % 2 else QUICK), "model": "tiny"}
            r = self._post("/v1/jobs", json=body, headers={"Idempotency-Key": f"soak-{i}"})
            assert r.status_code == 201, r.text
            self.jobs.append(r.json()["id"])
            time.sleep(seconds / self.args.jobs)

    def run(self) -> dict:
        sampler = threading.Thread(target=self.sample_queue, daemon=True)
        sampler.start()
        window = self.args.minutes * 60
        submitter = threading.Thread(target=self.submit_all, args=(window * 0.7,))
        submitter.start()
        faults = [self.kill_worker, self.kill_job_process, self.restart_redis, self.restart_postgres,
                  self.race_cancels, self.race_cancels]
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(*self.args.fault_every))
            fault = self.rng.choice(faults)
            fault()
            self.faults[fault.__name__] += 1
        submitter.join()
        settle = time.monotonic() + self.args.settle_minutes * 60
        while time.monotonic() < settle and any(self._get(j)["status"] not in TERMINAL for j in self.jobs):
            time.sleep(2)
        time.sleep(5)  # a sweep or two after the last job: dead attempts' disk is freed
        self.stop.set()
        return self.check()

    def check(self) -> dict:
        statuses, errors = Counter(), Counter()
        violations: dict[str, list] = {"not_terminal": [], "terminal_events": [], "artifacts": [], "queue_length": [],
                                       "leaked_dirs": []}
        for job_id in self.jobs:
            job = self._get(job_id)
            statuses[job["status"]] += 1
            if job.get("error"):
                errors[job["error"]["code"]] += 1
            if job["status"] not in TERMINAL:
                violations["not_terminal"].append(job_id)
            events = self._get(f"/v1/jobs/{job_id}/events?limit=1000")["data"]
            ends = [e for e in events if e["type"] == "status" and e["data"]["status"] in TERMINAL]
            if len(ends) != 1:
                violations["terminal_events"].append((job_id, len(ends)))
            names = [a["name"] for a in self._get(f"/v1/jobs/{job_id}/artifacts")["data"]]
            complete = len(names) == len(set(names)) and {"report.json", "masks.safetensors"} <= set(names)
            if (job["status"] == "succeeded") != bool(names) or (names and not complete):
                violations["artifacts"].append((job_id, job["status"], len(names)))
        for length, queued in self.queue_samples:
            if length > queued + self.args.workers:
                violations["queue_length"].append((length, queued))
        work = self.home / "work"
        leaked = list(work.iterdir()) if work.is_dir() else []
        leaked += list((self.home / "artifacts" / "jobs").glob(".*.staging-*"))
        leaked += list((self.home / "artifacts" / "resume").glob("*"))  # resume state of ended jobs
        violations["leaked_dirs"] = [str(p) for p in leaked]
        attempts = Counter(self._get(j)["attempt"] for j in self.jobs)
        resumed = sum(any(e["type"] == "resumed" for e in self._get(f"/v1/jobs/{j}/events?limit=1000")["data"])
                      for j in self.jobs)
        return {"jobs": len(self.jobs), "statuses": dict(statuses), "error_codes": dict(errors), "faults": dict(self.faults),
                "attempts": {str(k): v for k, v in sorted(attempts.items())}, "resumed_jobs": resumed,
                "queue_samples": len(self.queue_samples), "max_queue_length": max((q for q, _ in self.queue_samples), default=0),
                "violations": {k: len(v) for k, v in violations.items()}, "examples": {k: v[:5] for k, v in violations.items() if v}}

    def close(self) -> None:
        for w in self.workers:
            try:
                os.killpg(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.svc.close()
        self.redis.stop()
        self.pg.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--settle-minutes", type=float, default=10, help="after the faults, wait this long for jobs to end")
    ap.add_argument("--workers", type=int, default=2, help="worker supervisors (one Celery process each)")
    ap.add_argument("--fault-every", type=float, nargs=2, default=(10, 30), help="seconds between faults (uniform)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="soak.json")
    args = ap.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="topiary-soak-") as tmp:
        soak = Soak(args, Path(tmp))
        try:
            result = soak.run()
        finally:
            soak.close()
    result.update(minutes=args.minutes, workers=args.workers, seed=args.seed, wall_seconds=round(time.time() - started))
    print_table(["jobs", *result["statuses"], *result["faults"]],
                [[result["jobs"], *result["statuses"].values(), *result["faults"].values()]])
    print("attempts:", result["attempts"], " jobs that resumed:", result["resumed_jobs"])
    print_table(list(result["violations"]), [list(result["violations"].values())])
    print("examples:", result["examples"] or "none")
    print(write_json(args.out, result))
    sys.exit(1 if any(result["violations"].values()) else 0)


if __name__ == "__main__":
    main()
