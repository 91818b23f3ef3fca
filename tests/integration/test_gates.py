"""Quality gates through the real service: a scheduled job that meets its gates succeeds; the next
night, worse than the last one that shipped, ends gate_failed with its checkpoint and report kept,
and the API, the events stream and a signed webhook all say so. Bad gates are a 422 at the door."""

from __future__ import annotations

import json
import time

import pytest

from db.engine import sessionmaker_for
from db.models import Job
from service_fixtures import BODY, MINIMAL, Receiver, Service


@pytest.mark.parametrize("gates, evaluation, field", [
    ({"max_ppl_ratio": 0.9}, {}, "gates.max_ppl_ratio"),
    ({"max_ppl_ratio": 2.0}, {"dense": False}, "gates.max_ppl_ratio"),
    ({"min_zero_shot_retained": 0.9}, {}, "gates.min_zero_shot_retained"),  # no tasks to measure it on
    ({"max_regression": "2%"}, {}, "gates.max_regression"),
])
def test_gates_that_cannot_hold_are_refused_at_the_door(client, make_key, gates, evaluation, field):
    auth = make_key()
    body = {**MINIMAL, "evaluation": {"datasets": ["wikitext2"], **evaluation}, "gates": gates}
    r = client.post("/v1/jobs", json=body, headers=auth)
    assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], r.text
    r = client.post("/v1/schedules", json={"name": "nightly", "cron": "0 2 * * *", "job": body}, headers=auth)
    assert r.status_code == 422 and "job." + field in [e["field"] for e in r.json()["errors"]], r.text
    assert client.get("/v1/jobs", headers=auth).json()["data"] == []


def test_a_regression_ends_the_night_gate_failed_and_fires_the_webhook(tmp_path, pg_url, model_root):
    receiver = Receiver(fail_first=0)
    svc = Service(tmp_path, pg_url, "redis://127.0.0.1:6379/14", model_root,
                  TOPIARY_WEBHOOK_ALLOWED_NETWORKS='["127.0.0.0/8"]')
    try:
        svc.register("tiny", path=str(model_root / "tiny"))
        svc.http.post("/v1/webhook_endpoints", json={"url": receiver.url, "events": ["pruning_job.gate_failed"]})
        gates = {"max_ppl_ratio": 1000.0, "max_regression": 0.05}
        r = svc.http.post("/v1/schedules", json={"name": "nightly", "cron": "0 0 1 1 *",
                                                 "job": {**BODY, "model": "tiny", "gates": gates}})
        assert r.status_code == 201, r.text
        schedule_id, seen = r.json()["id"], set()
        assert r.json()["spec"]["gates"] == gates
        svc.start_worker()

        first = svc.fire(schedule_id, seen)
        assert first["status"] == "succeeded", first
        verdict = first["result"]["gates"]
        assert verdict["passed"] and [c["gate"] for c in verdict["checks"]] == ["max_ppl_ratio", "max_regression"]
        assert verdict["checks"][1]["skipped"]  # the first night has nothing to regress from
        ppl = first["result"]["perplexity"]["wikitext2"]
        assert verdict["checks"][0]["value"] == pytest.approx(ppl["pruned"] / ppl["dense"])

        # history: the night that shipped was 10% better than tonight's run will be
        with sessionmaker_for(pg_url)() as s:
            row = s.get(Job, first["id"])
            better = json.loads(json.dumps(row.result))
            better["perplexity"]["wikitext2"]["pruned"] = ppl["pruned"] / 1.1
            row.result = better
            s.commit()

        second = svc.fire(schedule_id, seen)
        assert second["status"] == "gate_failed", second
        assert second["error"]["code"] == "gate-failed" and "max_regression on wikitext2" in second["error"]["message"]
        (broken,) = [c for c in second["result"]["gates"]["checks"] if not c["passed"]]
        assert broken["gate"] == "max_regression" and broken["value"] == pytest.approx(0.1)
        assert broken["by"] == pytest.approx(0.05) and second["result"]["gates"]["compared_with"] == first["id"]
        # the work is kept: report and checkpoint
        report = svc.http.get(f"/v1/jobs/{second['id']}/report").json()
        assert report["perplexity"]["wikitext2"]["pruned"] == pytest.approx(ppl["pruned"])
        names = {a["name"] for a in svc.http.get(f"/v1/jobs/{second['id']}/artifacts").json()["data"]}
        assert "model/config.json" in names
        events = svc.http.get(f"/v1/jobs/{second['id']}/events").json()["data"]
        assert [e["data"]["status"] for e in events if e["type"] == "status"][-1] == "gate_failed"
        failed = svc.http.get(f"/v1/jobs?schedule_id={schedule_id}&status=gate_failed").json()["data"]
        assert [j["id"] for j in failed] == [second["id"]]

        deadline = time.monotonic() + 30
        while not receiver.requests:
            assert time.monotonic() < deadline, svc.log_text()
            time.sleep(0.2)
        (only,) = receiver.requests  # subscribed to gate_failed alone: one message, for the second night
        payload = json.loads(only[1])
        assert payload["type"] == "pruning_job.gate_failed" and payload["data"]["object"]["id"] == second["id"]
        assert payload["data"]["object"]["result"]["gates"]["passed"] is False
    finally:
        svc.close()
        receiver.server.shutdown()
