"""`topiary serve` in its embedded form, as the README's main job uses it: no PostgreSQL, no Redis,
just a SQLite file, kombu's filesystem broker and local artifacts under $TOPIARY_HOME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

from service_fixtures import free_port

BODY = {"model": "tiny", "method": "magnitude", "sparsity": 0.5, "device": "cpu",
        "calibration": {"source": "c4", "nsamples": 2, "seqlen": 16, "seed": 0}, "evaluation": {"datasets": []}}


def test_embedded_serve_runs_a_job_and_keeps_its_files_home(tmp_path, tiny_model_dir):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("TOPIARY_DATABASE_URL", "TOPIARY_BROKER_URL")}
    env.update(TOPIARY_HOME=str(home), HF_HUB_OFFLINE="1",
               TOPIARY_ALLOWED_MODEL_ROOTS=json.dumps([str(tiny_model_dir.parent)]))
    topiary = [sys.executable, "-m", "topiary.cli"]
    key = subprocess.run(topiary + ["keys", "create", "--tenant", "me"], env=env, cwd=cwd, capture_output=True,
                         text=True, check=True).stdout.strip()
    port = free_port()
    with open(tmp_path / "serve.log", "w") as log:  # the child keeps its own descriptor
        server = subprocess.Popen(topiary + ["serve", "--port", str(port), "--device", "cpu"], env=env, cwd=cwd,
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=log)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the service did not come up"
            time.sleep(0.3)
        assert http.post("/v1/models", json={"name": "tiny", "path": str(tiny_model_dir)}).status_code == 201
        job_id = http.post("/v1/jobs", json=BODY).json()["id"]
        deadline = time.monotonic() + 240
        while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "succeeded", job["error"]
        assert job["result"]["sparsity_achieved"] == 0.5
    finally:
        http.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    first = (tmp_path / "serve.log").read_text().splitlines()[:3]  # where to find it, before anything else
    assert first == [f"Topiary API  http://127.0.0.1:{port}/v1", f"API docs     http://127.0.0.1:{port}/docs",
                     f"Dashboard    http://127.0.0.1:{port}/dashboard/"], first
    assert (home / "topiary.db").is_file() and (home / "broker" / "control").is_dir()
    assert list(cwd.iterdir()) == []  # nothing lands in the directory it was started from
