"""API load benchmark: the API with 2 uvicorn worker processes on PostgreSQL (jobs enqueued on the
real Redis), a mixed load of 80% GET (a job, or the job list) and 20% POST job from a separate
process, for a fixed time at increasing concurrency. Prints throughput and p50/p99 latency.

    .venv/bin/python bench/api_load.py                      # 30 s at concurrency 1, 4, 16, 32
    .venv/bin/python bench/api_load.py --seconds 10 --concurrency 8

The load generator is Python (httpx) on the same 2 cores, so it takes CPU from the server.
Writes bench/results/api_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import print_table, write_json  # noqa: E402
from service_fixtures import ROOT, alembic, free_port, postgres_database  # noqa: E402

BODY = {"model": "smollm2-135m", "method": "wanda", "sparsity": 0.5,
        "calibration": {"source": "c4", "nsamples": 4, "seqlen": 64, "seed": 0},
        "evaluation": {"datasets": ["wikitext2"], "limit": 2}}


async def _load(base: str, key: str, job_ids: list[str], concurrency: int, seconds: float, out) -> None:
    import httpx

    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def user() -> None:
            nonlocal errors
            rng = random.Random()
            while time.monotonic() < deadline:
                roll = rng.random()
                t = time.perf_counter()
                if roll < 0.4:
                    r = await client.get(f"/v1/jobs/{rng.choice(job_ids)}")
                elif roll < 0.8:
                    r = await client.get("/v1/jobs?limit=20")
                else:
                    r = await client.post("/v1/jobs", json=BODY)
                latencies.append(time.perf_counter() - t)
                errors += r.status_code >= 400

        await asyncio.gather(*(user() for _ in range(concurrency)))
    out.put((latencies, errors))


def run_load(base, key, job_ids, concurrency, seconds):
    """The load runs in its own process so client and server do not share an interpreter."""
    queue = mp.Queue()
    proc = mp.Process(target=lambda: asyncio.run(_load(base, key, job_ids, concurrency, seconds, queue)))
    proc.start()
    latencies, errors = queue.get()
    proc.join()
    return latencies, errors


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--api-workers", type=int, default=2)
    args = ap.parse_args()
    import httpx
    import redis

    from db import keys
    from db.engine import sessionmaker_for

    queue_name = f"bench-{secrets.token_hex(4)}"
    rows = []
    with postgres_database() as url:
        alembic(url, "upgrade", "head")
        with sessionmaker_for(url)() as s:
            _, key = keys.create_key(s, "load", ["jobs:read", "jobs:write"])
            s.commit()
        sessionmaker_for(url).kw["bind"].dispose()
        port = free_port()
        env = {**os.environ, "TOPIARY_DATABASE_URL": url, "TOPIARY_BROKER_URL": "redis://127.0.0.1:6379/14",
               "TOPIARY_TASK_QUEUE": queue_name}
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--port", str(port),
                                   "--workers", str(args.api_workers), "--log-level", "warning", "--no-access-log"],
                                  cwd=ROOT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            auth = {"Authorization": f"Bearer {key}"}
            job_ids = [httpx.post(f"{base}/v1/jobs", json=BODY, headers=auth).json()["id"] for _ in range(50)]
            for c in [int(x) for x in args.concurrency.split(",")]:
                latencies, errors = run_load(base, key, job_ids, c, args.seconds)
                rows.append({"concurrency": c, "requests": len(latencies), "rps": len(latencies) / args.seconds,
                             "p50_ms": 1000 * pct(latencies, 0.5), "p99_ms": 1000 * pct(latencies, 0.99), "errors": errors})
                print(f"c={c}: {rows[-1]['rps']:.0f} req/s p50 {rows[-1]['p50_ms']:.1f} ms p99 {rows[-1]['p99_ms']:.1f} ms",
                      flush=True)
        finally:
            server.terminate()
            server.wait()
            redis.Redis(host="127.0.0.1", port=6379, db=14).delete(queue_name)
    print()
    print_table(["concurrency", "requests", "req/s", "p50 ms", "p99 ms", "errors"],
                [[r["concurrency"], r["requests"], f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", r["errors"]]
                 for r in rows])
    print(f"\nwrote {write_json('api_load.json', {'setup': f'{args.api_workers} uvicorn workers, PostgreSQL, 80/20 GET/POST', 'rows': rows})}")


if __name__ == "__main__":
    main()
