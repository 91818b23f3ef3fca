"""Sweep jobs through the real service: one submission pruned at each setting by a real worker,
every point's checkpoint an artifact of its own, the curve in the result; bad sweeps refused at
the door; the estimate counts every point."""

from __future__ import annotations

import pytest

from service_fixtures import BODY, MINIMAL, Service


@pytest.mark.parametrize("extra, field", [
    ({"sweep": [0.5]}, "sweep"),
    ({"sweep": [0.5, 1.5]}, "sweep[1]"),
    ({"sweep": [0.5, "2:4"], "sparsity": 0.5}, "sweep"),
    ({"sweep": [0.5, "2:4"], "gates": {"max_ppl": 100}}, "gates"),
    ({"sweep": [0.5, "2:4"], "sparsity_profile": {"kind": "owl"}}, "sweep[1]"),
])
def test_bad_sweeps_are_refused_at_the_door(client, make_key, extra, field):
    auth = make_key()
    body = {k: v for k, v in MINIMAL.items() if k != "sparsity"}
    r = client.post("/v1/jobs", json={**body, **extra}, headers=auth)
    assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], r.text


def test_the_estimate_of_a_sweep_counts_every_point(client, make_key):
    auth = make_key()
    body = {k: v for k, v in MINIMAL.items() if k != "sparsity"}
    one = client.post("/v1/jobs/estimate", json={**body, "sparsity": 0.5}, headers=auth).json()
    three = client.post("/v1/jobs/estimate", json={**body, "sweep": [0.4, 0.5, 0.6]}, headers=auth).json()
    for device in ("cpu", "cuda"):
        single, swept = one["needs"][device], three["needs"][device]
        assert swept["host_memory_bytes"] == single["host_memory_bytes"]
        assert swept["expected_seconds"] == pytest.approx(3 * single["expected_seconds"], rel=0.05)
        assert swept["disk_bytes"] == pytest.approx(3 * single["disk_bytes"], rel=0.05)


def test_a_sweep_job_publishes_each_point(tmp_path, pg_url, model_root):
    svc = Service(tmp_path, pg_url, "redis://127.0.0.1:6379/14", model_root)
    try:
        svc.register("tiny", path=str(model_root / "tiny"))
        svc.start_worker()
        body = {k: v for k, v in BODY.items() if k != "sparsity"}
        job = svc.wait(svc.submit("tiny", {**body, "sweep": [0.3, "2:4"]}))
        assert job["status"] == "succeeded", job
        assert job["spec"]["sweep"] == ["0.3", "2:4"] and job["spec"]["sparsity"] is None
        points = job["result"]["sweep"]
        assert [p["setting"] for p in points] == ["0.3", "2:4"]
        assert [p["sparsity_achieved"] for p in points] == pytest.approx([0.3, 0.5], abs=0.01)
        assert points[0]["perplexity"]["wikitext2"]["dense"] == points[1]["perplexity"]["wikitext2"]["dense"]
        names = {a["name"] for a in svc.http.get(f"/v1/jobs/{job['id']}/artifacts?limit=100").json()["data"]}
        for p in points:
            assert {f"{p['path']}/model/config.json", f"{p['path']}/masks.safetensors", f"{p['path']}/report.json"} <= names
        report = svc.http.get(f"/v1/jobs/{job['id']}/report").json()
        assert report["points"] == points
    finally:
        svc.close()
