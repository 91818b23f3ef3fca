"""POST /v1/jobs/estimate and admission at POST /v1/jobs, on a real database. Worker classes come
from registry rows written by the registry's own code (db.workers.register), as a worker of that
kind would write them: the GPU ones cannot run here."""

from __future__ import annotations

import json
import math
import secrets
from datetime import timedelta

import pytest

from service_fixtures import MINIMAL

GIB = 1 << 30
LLAMA_70B = {"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
             "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 32000, "tie_word_embeddings": False,
             "dtype": "bfloat16"}
BIG_JOB = {"model": "llama70b", "method": "sparsegpt", "sparsity": 0.5,
           "calibration": {"source": "c4", "nsamples": 128, "seqlen": 2048}, "evaluation": {"datasets": []}}


@pytest.fixture
def workers(db_url, settings):
    """add(device, host GiB, gpu name, gpu GiB) -> a live registry row of this service's queue;
    every row is removed afterwards (the registry is shared by the tests on this database)."""
    from db import workers as registry
    from db.engine import sessionmaker_for

    added = []

    def add(device="cpu", host_gib=24, gpu_name=None, gpu_gib=None, heartbeat_age=0.0):
        info = {"id": f"test-{secrets.token_hex(4)}:1", "name": device, "host": "test", "pid": 1,
                "queue": settings.task_queue, "device": device, "gpu_name": gpu_name,
                "gpu_memory_bytes": gpu_gib and int(gpu_gib * GIB), "host_memory_bytes": int(host_gib * GIB),
                "cpus": 8, "version": "test", "current_job_id": None}
        with sessionmaker_for(db_url)() as s:
            registry.register(s, info)
            if heartbeat_age:
                row = s.get(registry.Worker, info["id"])
                row.heartbeat_at -= timedelta(seconds=heartbeat_age)
                s.commit()
        added.append(info["id"])
        return info

    yield add
    with sessionmaker_for(db_url)() as s:
        for worker_id in added:
            registry.remove(s, worker_id)


@pytest.fixture
def big_model(client, settings, make_key):
    """A registered directory holding only a LLaMA-70B config.json: estimates read nothing else."""
    path = settings.allowed_model_roots[0] / "llama70b"
    path.mkdir()
    (path / "config.json").write_text(json.dumps(LLAMA_70B))
    headers = make_key(["jobs:read", "jobs:write"])
    assert client.post("/v1/models", json={"name": "llama70b", "path": str(path)}, headers=headers).status_code == 201
    return headers


def test_the_bundled_model_is_sized_from_its_config_alone(client, make_key, smol_dir):
    from safetensors import safe_open

    headers = make_key(["jobs:read"])
    r = client.post("/v1/jobs/estimate", json=MINIMAL, headers=headers)
    assert r.status_code == 200, r.text
    est = r.json()
    real = 0
    for shard in smol_dir.glob("*.safetensors"):
        with safe_open(shard, "pt") as f:  # shapes from the header: no tensor is read
            real += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if not k.endswith("norm.weight"))
    assert est["params"] == real  # every linear and the (tied) embedding, counted from config.json (norms aside)
    assert est["streamed"] and est["worker_classes"] == [] and est["admitted"]  # no live worker: nothing to judge
    assert est["needs"]["cpu"]["gpu_memory_bytes"] is None and est["needs"]["cuda"]["gpu_memory_bytes"] > 0
    more = client.post("/v1/jobs/estimate", headers=headers,
                       json={**MINIMAL, "calibration": {**MINIMAL["calibration"], "nsamples": 256, "seqlen": 1024}}).json()
    for key in ("host_memory_bytes", "expected_seconds"):
        assert more["needs"]["cpu"][key] > est["needs"]["cpu"][key]


def test_a_job_no_live_worker_can_hold_is_refused_with_what_it_needs(client, big_model, workers):
    workers("cpu", host_gib=24)
    workers("cuda", host_gib=64, gpu_name="NVIDIA L4", gpu_gib=24)
    r = client.post("/v1/jobs", json=BIG_JOB, headers=big_model)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"].endswith("/no-worker-fits")
    assert "GiB of GPU memory" in problem["detail"] and "NVIDIA L4 with 24.0 GiB" in problem["detail"]
    assert not any(c["fits"] for c in problem["estimate"]["worker_classes"])
    assert client.get("/v1/jobs", headers=big_model).json()["data"] == []  # nothing was queued

    est = client.post("/v1/jobs/estimate", json=BIG_JOB, headers=big_model).json()
    l4 = next(c for c in est["worker_classes"] if c["device"] == "cuda")
    assert l4["runs_on"] == "cuda" and l4["needs"]["gpu_memory_bytes"] > 24 * GIB
    assert l4["seconds"]["low"] < l4["seconds"]["expected"] < l4["seconds"]["high"]
    workers("cuda", host_gib=512, gpu_name="NVIDIA H200", gpu_gib=141)  # a bigger worker comes up
    est = client.post("/v1/jobs/estimate", json=BIG_JOB, headers=big_model).json()
    assert est["admitted"] and [c["gpu_name"] for c in est["worker_classes"] if c["fits"]] == ["NVIDIA H200"]
    assert client.post("/v1/jobs", json=BIG_JOB, headers=big_model).status_code == 201


def test_device_and_liveness_decide_who_can_run_it(client, big_model, workers):
    workers("cpu", host_gib=2048)  # holds the 70B job on the CPU...
    cuda_job = {**BIG_JOB, "device": "cuda"}
    refused = client.post("/v1/jobs", json=cuda_job, headers=big_model)
    assert refused.status_code == 422  # ...but not one that asks for CUDA
    assert refused.json()["estimate"]["worker_classes"][0]["runs_on"] is None
    workers("cuda", host_gib=512, gpu_name="NVIDIA H200", gpu_gib=141, heartbeat_age=3600)  # a dead one
    assert client.post("/v1/jobs", json=cuda_job, headers=big_model).status_code == 422
    assert client.post("/v1/jobs", json=BIG_JOB, headers=big_model).status_code == 201  # auto: the CPU worker


def test_the_operator_can_queue_unfit_jobs_for_workers_to_come(client, settings, big_model, workers):
    workers("cpu", host_gib=8)
    assert client.post("/v1/jobs", json=BIG_JOB, headers=big_model).status_code == 422
    settings.admit_unfit_jobs = True
    assert client.post("/v1/jobs", json=BIG_JOB, headers=big_model).status_code == 201


def test_a_model_the_estimate_cannot_size_is_said_so_and_still_admitted(client, settings, make_key, workers):
    path = settings.allowed_model_roots[0] / "mamba"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "mamba", "hidden_size": 768}))
    headers = make_key(["jobs:read", "jobs:write"])
    assert client.post("/v1/models", json={"name": "mamba", "path": str(path)}, headers=headers).status_code == 201
    workers("cpu", host_gib=1)
    r = client.post("/v1/jobs/estimate", json={**MINIMAL, "model": "mamba"}, headers=headers)
    assert r.status_code == 422 and r.json()["type"].endswith("/cannot-estimate")
    assert client.post("/v1/jobs", json={**MINIMAL, "model": "mamba"}, headers=headers).status_code == 201
