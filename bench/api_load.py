"""API load benchmark: the API with 2 uvicorn worker processes on PostgreSQL (jobs enqueued on the
real Redis), a mixed load of 80% GET (40% one job, 40% the job list) and 20% POST job, for a fixed
time at increasing concurrency. Prints throughput and p50/p99 latency.

    .venv/bin/python bench/api_load.py                      # 30 s at concurrency 1, 4, 16, 32
    .venv/bin/python bench/api_load.py --seconds 10 --concurrency 8

The load comes from `wrk` (Debian package `wrk`: one C thread, a Lua script picks each request),
so the client takes little of the 2 cores the server runs on. Writes bench/results/api_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import print_table, write_json

from service_fixtures import ROOT, alembic, free_port, postgres_database

BODY = {"model": "smollm2-135m", "method": "wanda", "sparsity": 0.5,
        "calibration": {"source": "c4", "nsamples": 4, "seqlen": 64, "seed": 0},
        "evaluation": {"datasets": ["wikitext2"], "limit": 2}}

# wrk's Lua: each request is drawn 40/40/20; every response's status is counted by done()
SCRIPT = """
local ids = {%(ids)s}
local body = [[%(body)s]]
local auth = "Bearer %(key)s"
local bad = 0
math.randomseed(%(seed)d)
request = function()
  local roll = math.random()
  local h = {["Authorization"] = auth}
  if roll < 0.4 then
    return wrk.format("GET", "/v1/jobs/" .. ids[math.random(#ids)], h)
  elseif roll < 0.8 then
    return wrk.format("GET", "/v1/jobs?limit=20", h)
  end
  h["Content-Type"] = "application/json"
  return wrk.format("POST", "/v1/jobs", h, body)
end
response = function(status, headers, body)
  if status >= 400 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%.1f %%.1f %%.1f\\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def run_wrk(base: str, script: Path, concurrency: int, seconds: float) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", str(script), base],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, errors = int(found[1]), int(found[2])
    return {"concurrency": concurrency, "requests": requests, "rps": requests / seconds, "p50_ms": float(found[3]),
            "p99_ms": float(found[4]), "max_ms": float(found[5]), "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--api-workers", type=int, default=2)
    ap.add_argument("--out", default="api_load.json")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/api_load.py needs wrk: apt-get install wrk")
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
        server = subprocess.Popen([sys.executable, "-m", "topiary.cli", "api", "--port", str(port),
                                   "--workers", str(args.api_workers), "--no-migrate"], cwd=ROOT, env=env)
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
            with tempfile.TemporaryDirectory() as tmp:
                script = Path(tmp) / "mix.lua"
                script.write_text(SCRIPT % {"ids": ",".join(f'"{i}"' for i in job_ids), "body": json.dumps(BODY),
                                            "key": key, "seed": 0})
                run_wrk(base, script, 4, 3)  # warm-up: connections, caches, both server processes
                for c in [int(x) for x in args.concurrency.split(",")]:
                    rows.append(run_wrk(base, script, c, args.seconds))
                    r = rows[-1]
                    print(f"c={c}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms "
                          f"errors {r['errors']}", flush=True)
        finally:
            server.terminate()
            server.wait()
            redis.Redis(host="127.0.0.1", port=6379, db=14).delete(queue_name)
    print()
    print_table(["concurrency", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"],
                [[r["concurrency"], r["requests"], f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                  f"{r['max_ms']:.1f}", r["errors"]] for r in rows])
    setup = f"{args.api_workers} uvicorn workers, PostgreSQL, wrk 40/40/20 GET job / GET list / POST job"
    print(f"\nwrote {write_json(args.out, {'setup': setup, 'rows': rows})}")


if __name__ == "__main__":
    main()
