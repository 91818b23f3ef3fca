"""`topiary demo`: the README's main job, through the service like any client.

Starts `topiary serve` (embedded SQLite + filesystem broker unless TOPIARY_DATABASE_URL /
TOPIARY_BROKER_URL are set), creates an API key, submits a job for the bundled model over REST,
follows its events over SSE with a progress bar, prints the report and the download links, and
stops the service again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the service exited during start-up")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the service did not become ready")


def _follow(client: httpx.Client, job_id: str) -> None:
    """Print stage changes and a layer progress bar from the SSE stream until a terminal event."""
    from tqdm import tqdm

    bar = None
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}, timeout=None) as r:
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])["data"]
                if kind == "status":
                    if bar is not None:
                        bar.close()
                        bar = None
                    print(f"[{data['status']}]", file=sys.stderr, flush=True)
                elif kind == "layer_done":
                    if bar is None:
                        bar = tqdm(total=data["layers_total"], unit="layer", desc="pruning", file=sys.stderr)
                    bar.update(data["layers_done"] - bar.n)
                    err = "-" if data.get("rel_error") is None else f"{data['rel_error']:.2e}"
                    bar.set_postfix_str(f"err={err} eta={data.get('eta_seconds') or 0:.0f}s")
    if bar is not None:
        bar.close()


def run(method: str, sparsity: float, nsamples: int, seqlen: int, eval_limit: int) -> int:
    from db import keys
    from db.engine import sessionmaker_for
    from db.settings import get_settings

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # the service's own logs (Celery banner, warnings) go to a file, so the terminal shows the job
    log_path = get_settings().home / "logs" / "demo-service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        service = subprocess.Popen([sys.executable, "-m", "topiary.cli", "serve", "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ok = False
    try:
        print(f"starting the service on {base} (database {get_settings().db_url}; log {log_path})", file=sys.stderr)
        _wait_ready(base, service)
        with sessionmaker_for(get_settings().db_url)() as s:
            _, key = keys.create_key(s, "demo", ["jobs:read", "jobs:write"])
            s.commit()
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        body = {"model": "smollm2-135m", "method": method, "sparsity": sparsity,
                "calibration": {"source": "c4", "nsamples": nsamples, "seqlen": seqlen, "seed": 0},
                "evaluation": {"datasets": ["wikitext2"], "limit": eval_limit}}
        r = client.post("/v1/jobs", json=body)
        r.raise_for_status()
        job_id = r.json()["id"]
        print(f"submitted {job_id}: {method} at {sparsity:.0%} on smollm2-135m", file=sys.stderr)
        _follow(client, job_id)
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] != "succeeded":
            print(f"job {job['status']}: {job['error']}", file=sys.stderr)
            return 1
        res = job["result"]
        ppl = res["perplexity"]["wikitext2"]
        print(f"\njob         {job_id} ({job['status']}, attempt {job['attempt']})")
        print(f"method      {method}, sparsity {res['sparsity_achieved']:.4f} achieved")
        print(f"wikitext2   dense {ppl['dense']:.2f} -> pruned {ppl['pruned']:.2f} ({ppl['windows']} x {ppl['seqlen']} tokens)")
        print(f"time        {res['seconds_total']:.0f}s on {res['device']}")
        arts = client.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]
        print(f"report      GET {base}/v1/jobs/{job_id}/report")
        for art in arts:
            if art["name"] in ("model/model.safetensors.index.json", "masks.safetensors", "report.json"):
                print(f"download    {art['name']:<34} GET /v1/artifacts/{art['id']}/content ({art['size']:,} bytes)")
        shards = [a for a in arts if a["name"].startswith("model/model-")]  # one per block, streamed
        print(f"            model/ holds {len(shards)} weight shards ({sum(a['size'] for a in shards):,} bytes): "
              f"GET {base}/v1/jobs/{job_id}/artifacts lists them")
        print(f"checkpoint  {get_settings().artifacts / 'jobs' / job_id / 'model'}")
        ok = True
        return 0
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)  # the supervisor stops its children in order
            try:
                service.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
        print("service stopped", file=sys.stderr)
        if not ok:  # whatever went wrong, the service's last words are the first thing to read
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            print(f"last lines of {log_path}:", *tail, sep="\n  ", file=sys.stderr)
