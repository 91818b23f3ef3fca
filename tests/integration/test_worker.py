"""The service as deployed: a real uvicorn process, real Celery worker processes, the real Redis and
PostgreSQL. Jobs prune a tiny random LLaMA (with the real SmolLM2 tokenizer) on real C4 text."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from service_fixtures import BODY, SLOW, Service, free_port


def test_job_runs_and_checkpoint_downloads_over_http(service, tmp_path):
    from transformers import AutoModelForCausalLM

    from pruning_core.export import load_masks

    service.start_worker()
    job_id = service.submit("tiny", BODY)
    with service.http.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"},
                             timeout=300) as r:
        text = "".join(r.iter_text())
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert any(e["type"] == "layer_done" for e in events)
    assert events[-1]["type"] == "status" and events[-1]["data"]["status"] == "succeeded"
    job = service.job(job_id)
    assert job["status"] == "succeeded" and job["attempt"] == 1 and job["result"]["sparsity_achieved"] == 0.5
    arts = service.http.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]
    out = tmp_path / "download"
    for art in arts:
        dest = out / art["name"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(service.http.get(f"/v1/artifacts/{art['id']}/content").content)
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    modules = dict(model.named_modules())
    masks = load_masks(out / "masks.safetensors")
    assert len(masks) == 14
    for name, keep in masks.items():
        W = modules[name].weight
        assert torch.all(W[~keep] == 0) and abs(float((W == 0).float().mean()) - 0.5) < 0.02
    assert service.http.get(f"/v1/jobs/{job_id}/report").json()["method"] == "wanda"


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_one_archive_holds_the_whole_result_and_topiary_download_verifies_it(service, tmp_path, pg_url):
    import hashlib
    import io
    import subprocess
    import sys
    import tarfile

    from db.engine import sessionmaker_for
    from db.models import Artifact, Job

    service.start_worker()
    job_id = service.submit("tiny", BODY)
    assert service.wait(job_id)["status"] == "succeeded"
    listing = {a["name"]: a for a in service.http.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]}
    r = service.http.get(f"/v1/jobs/{job_id}/artifacts/archive")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-tar"
    assert int(r.headers["content-length"]) == len(r.content)
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == set(listing) and {"report.json", "masks.safetensors", "model/config.json"} <= set(members)
        for name, member in members.items():
            digest = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
            assert digest == listing[name]["sha256"] == member.pax_headers["TOPIARY.sha256"], name

    out = tmp_path / "fetched"
    env = {**os.environ, "TOPIARY_API_URL": str(service.http.base_url),
           "TOPIARY_API_KEY": service.http.headers["Authorization"].split(" ", 1)[1]}
    proc = subprocess.run([sys.executable, "-m", "topiary.cli", "download", job_id, str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "sha256 verified" in proc.stdout, proc.stderr
    for name, art in listing.items():
        path = out / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == art["sha256"]
        assert path.stat().st_mode & 0o777 == 0o644
    again = subprocess.run([sys.executable, "-m", "topiary.cli", "download", job_id, str(out)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not an empty directory" in again.stderr

    # streamed: a 256 MiB artifact moves through the API without its memory growing to match
    big = service.env["TOPIARY_HOME"] + f"/artifacts/jobs/{job_id}/big.bin"
    chunk = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(big, "wb") as f:
        for _ in range(256):
            f.write(chunk)
            digest.update(chunk)
    with sessionmaker_for(pg_url)() as s:
        job = s.get(Job, job_id)
        s.add(Artifact(tenant_id=job.tenant_id, job_id=job_id, name="big.bin", location=f"jobs/{job_id}/big.bin",
                       size=256 << 20, sha256=digest.hexdigest()))
        s.commit()
    before = _hwm_kib(service.api.pid)
    total = 0
    with service.http.stream("GET", f"/v1/jobs/{job_id}/artifacts/archive") as r:
        for block in r.iter_bytes():
            total += len(block)
    assert total == int(r.headers["content-length"]) > 256 << 20
    assert _hwm_kib(service.api.pid) - before < 64 << 10  # KiB: under a quarter of the file


def test_a_profiled_job_reports_each_layers_target_and_hits_the_global_one(service):
    """OWL plus a rule that leaves one layer dense, through the API and a real worker."""
    service.start_worker()
    profile = {"kind": "owl", "owl_m": 4, "owl_lambda": 0.1,
               "rules": [{"match": r"layers\.0\.self_attn\.o_proj", "sparsity": 0}]}
    job = service.wait(service.submit("tiny", {**BODY, "sparsity": 0.6, "sparsity_profile": profile}))
    assert job["status"] == "succeeded", job["error"]
    assert job["spec"]["sparsity_profile"]["owl_m"] == 4.0
    report = service.http.get(f"/v1/jobs/{job['id']}/report").json()
    assert report["sparsity_profile"]["kind"] == "owl" and len(report["sparsity_profile"]["block_outlier_ratios"]) == 2
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert layers["model.layers.0.self_attn.o_proj"]["sparsity"] == 0.0
    zeros = sum(layer["sparsity"] * layer["shape"][0] * layer["shape"][1] for layer in layers.values())
    total = sum(layer["shape"][0] * layer["shape"][1] for layer in layers.values())
    rows = max(layer["shape"][0] for layer in layers.values())  # wanda rounds per row
    assert abs(zeros - 0.6 * total) <= rows / 2 and report["sparsity_achieved"] == pytest.approx(0.6, abs=rows / total)
    assert all(abs(layer["sparsity"] - layer["target"]) < 1e-9 for layer in layers.values())


def test_cancel_running_job(service):
    service.start_worker()
    job_id = service.submit("deeper", SLOW)
    service.wait_layers(job_id, 1)
    r = service.http.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] in ("cancelling", "cancelled")
    layers_at_cancel = r.json()["progress"]["layers_done"]
    job = service.wait(job_id)
    assert job["status"] == "cancelled" and job["error"]["code"] == "cancelled"
    assert job["progress"]["layers_done"] <= layers_at_cancel + 1  # honoured within one layer
    assert service.http.get(f"/v1/jobs/{job_id}/artifacts").json()["data"] == []


def test_sigkill_worker_mid_job_completes_once(service):
    service.start_worker()
    job_id = service.submit("deeper", SLOW)
    service.wait_layers(job_id, 3)
    service.kill_worker()
    service.start_worker()  # its reaper notices the lapsed lease and requeues the job
    job = service.wait(job_id)
    assert job["status"] == "succeeded" and job["attempt"] == 2
    names = [a["name"] for a in service.http.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]]
    assert len(names) == len(set(names)) and "report.json" in names and "masks.safetensors" in names
    statuses = [e["data"].get("status") for e in service.http.get(f"/v1/jobs/{job_id}/events?limit=1000").json()["data"]
                if e["type"] == "status"]
    assert statuses == ["queued", "running", "queued", "running", "evaluating", "succeeded"]


def test_job_process_killed_fails_clearly_and_worker_continues(service):
    """The OOM killer's way: SIGKILL to the job processes (the running one and the warm spare)
    while the Celery worker lives. The attempt fails with a reason, nothing is published, and
    the worker runs the next job in a fresh process."""
    service.start_worker()
    job_id = service.submit("deeper", SLOW)
    service.wait_layers(job_id, 1)
    victims = service.job_processes()
    assert len(victims) == 2  # the job and the next job's spare
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    job = service.wait(job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "worker-crashed"
    assert "SIGKILL" in job["error"]["message"]
    assert service.http.get(f"/v1/jobs/{job_id}/artifacts").json()["data"] == []
    assert service.wait(service.submit("tiny", BODY))["status"] == "succeeded"
    assert not set(victims) & set(service.job_processes())


def test_bad_model_fails_clearly_and_worker_continues(service):
    service.register("ghost", hub_id="nobody-here/no-such-model")
    service.start_worker()
    bad = service.submit("ghost", BODY)
    good = service.submit("tiny", BODY)
    failed = service.wait(bad)
    assert failed["status"] == "failed" and failed["error"]["code"] == "model-not-found"
    assert "no-such-model" in failed["error"]["message"] and "Traceback" not in failed["error"]["message"]
    assert service.wait(good)["status"] == "succeeded"


def test_redis_restart_while_queued(tmp_path, pg_url, model_root):
    """The test runs its own redis-server (no persistence) so the shared one is never restarted."""
    port = free_port()
    redis_cmd = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"]
    redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    svc = Service(tmp_path, pg_url, f"redis://127.0.0.1:{port}/0", model_root)
    try:
        svc.register("tiny", path=str(model_root / "tiny"))
        job_id = svc.submit("tiny", BODY)  # enqueued on this Redis, nobody consuming yet
        redis.terminate()
        redis.wait()
        redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)  # back, empty: the message is gone
        time.sleep(0.5)
        svc.start_worker()
        job = svc.wait(job_id)
        assert job["status"] == "succeeded" and job["attempt"] == 1
    finally:
        svc.close()
        redis.terminate()
        redis.wait()


def _download_tensors(service, job_id) -> dict:
    from safetensors.torch import load

    merged = {}
    for art in service.http.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]:
        if art["name"].startswith("model/") and art["name"].endswith(".safetensors"):
            merged.update(load(service.http.get(f"/v1/artifacts/{art['id']}/content").content))
    return merged


def test_a_killed_workers_job_resumes_at_its_block_and_matches_an_uninterrupted_run(service):
    """SIGKILL the whole worker while block 2 of 6 is being pruned: attempt 2 starts at block 2
    (its event says so; blocks 0 and 1 are not pruned again) and the checkpoint it publishes
    equals, tensor for tensor, that of the same job run without interruption."""
    service.start_worker()
    job_id = service.submit("deeper", SLOW)
    service.wait_layers(job_id, 2 * 7 + 1)
    service.kill_worker()
    service.start_worker()
    job = service.wait(job_id)
    assert job["status"] == "succeeded" and job["attempt"] == 2, job
    events = service.http.get(f"/v1/jobs/{job_id}/events?limit=1000").json()["data"]
    [resumed] = [e["data"] for e in events if e["type"] == "resumed"]
    assert resumed["blocks"] == 6 and resumed["block"] >= 2 and resumed["message"].startswith("resumed at block")
    second_attempt = [e for e in events if e["type"] == "layer_done"][-(6 - resumed["block"]) * 7:]
    assert all(int(e["data"]["layer"].split(".")[2]) >= resumed["block"] for e in second_attempt)
    straight = service.wait(service.submit("deeper", SLOW))
    assert straight["status"] == "succeeded" and straight["attempt"] == 1
    a, b = _download_tensors(service, job_id), _download_tensors(service, straight["id"])
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not any((service.logs.parent / "artifacts" / "resume").glob("*"))  # resume state gone once done


def test_request_ids_reach_the_response_and_every_log_line(tmp_path, pg_url, model_root):
    """X-Request-ID on every answer (the client's own when sane), and one JSON access line per
    request carrying it, with the route template and the status."""
    svc = Service(tmp_path, pg_url, "redis://127.0.0.1:6379/14", model_root, TOPIARY_LOG_FORMAT="json")
    try:
        assert svc.http.get("/v1/jobs", headers={"X-Request-ID": "client-abc-123"}).headers["x-request-id"] == \
            "client-abc-123"
        missing = svc.http.get("/v1/jobs/pj_nope")
        generated = missing.headers["x-request-id"]
        assert missing.status_code == 404 and generated.startswith("req_")
        replaced = svc.http.get("/v1/jobs", headers={"X-Request-ID": "two words"}).headers["x-request-id"]
        assert replaced.startswith("req_") and replaced != generated
        deadline = time.monotonic() + 10
        while True:
            lines = [json.loads(line) for p in svc.logs.glob("api-*.log") for line in p.read_text().splitlines()
                     if line.startswith("{")]
            access = {line["request_id"]: line for line in lines if line["logger"] == "topiary.access"}
            if replaced in access or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert access["client-abc-123"]["route"] == "/v1/jobs" and access["client-abc-123"]["status"] == 200
        assert access[generated]["route"] == "/v1/jobs/{job_id}" and access[generated]["status"] == 404
        assert access[generated]["message"] == "GET /v1/jobs/pj_nope 404" and access[generated]["ms"] >= 0
    finally:
        svc.close()
