"""Webhooks: the endpoint resource, the outbox written with the status change, and real signed
deliveries from a real worker supervisor to a real HTTP receiver, verified with the
`standardwebhooks` library (an independent implementation of the signature scheme)."""

from __future__ import annotations

import json
import time

import pytest

from db import jobs, keys
from db import status as st
from db.engine import sessionmaker_for
from db.models import WebhookDelivery
from service_fixtures import BODY, Receiver, Service, alembic, postgres_database


def test_endpoint_resource(client, make_key):
    auth = make_key()
    r = client.post("/v1/webhook_endpoints", json={"url": "https://hooks.example/topiary", "events": ["pruning_job.succeeded"]},
                    headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["pruning_job.succeeded"]
    shown = client.get(f"/v1/webhook_endpoints/{created['id']}", headers=auth).json()
    assert "secret" not in shown or shown["secret"] is None  # shown once, at creation
    assert client.get(f"/v1/webhook_endpoints/{created['id']}", headers=make_key()).status_code == 404
    r = client.patch(f"/v1/webhook_endpoints/{created['id']}", json={"enabled": False}, headers=auth)
    assert r.status_code == 200 and r.json()["enabled"] is False
    for bad, field in (({"url": "ftp://x/y"}, "url"), ({"url": "https://x", "events": ["pruning_job.exploded"]}, "events")):
        r = client.post("/v1/webhook_endpoints", json=bad, headers=auth)
        assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith(field)
    assert client.delete(f"/v1/webhook_endpoints/{created['id']}", headers=auth).status_code == 204
    assert client.get("/v1/webhook_endpoints", headers=auth).json()["data"] == []


def test_the_outbox_row_is_written_with_the_status_change(db_url):
    from db.models import WebhookEndpoint

    with sessionmaker_for(db_url)() as s:
        tenant = keys.create_key(s, "hooks-outbox-" + db_url[:5], ["jobs:read"])[0].tenant_id
        endpoint = WebhookEndpoint(tenant_id=tenant, url="http://127.0.0.1:9/", events=["pruning_job.succeeded"],
                                   secret="whsec_" + "A" * 32)
        s.add(endpoint)
        job = jobs.create_job(s, tenant, {"model": "m", "method": "wanda"}, {"team": "nlp"})
        s.commit()
        assert jobs.claim(s, job.id, "w", 30)  # started: not subscribed, nothing queued
        s.commit()
        job = s.get(jobs.Job, job.id)
        jobs.transition(s, job, st.EVALUATING)
        jobs.transition(s, job, st.SUCCEEDED, result={"sparsity_achieved": 0.5})
        s.rollback()  # a change that never commits sends nothing
        assert s.query(WebhookDelivery).filter_by(endpoint_id=endpoint.id).count() == 0
        job = s.get(jobs.Job, job.id)
        jobs.transition(s, job, st.EVALUATING)
        jobs.transition(s, job, st.SUCCEEDED, result={"sparsity_achieved": 0.5})
        s.commit()
        [d] = s.query(WebhookDelivery).filter_by(endpoint_id=endpoint.id).all()
    assert d.event_type == "pruning_job.succeeded" and d.status == "pending"
    assert d.payload["id"] == d.id and d.payload["data"]["object"]["status"] == "succeeded"
    assert d.payload["data"]["object"]["result"] == {"sparsity_achieved": 0.5}


@pytest.fixture
def pg_url():
    with postgres_database() as url:
        alembic(url, "upgrade", "head")
        yield url
        sessionmaker_for(url).kw["bind"].dispose()


def test_signed_deliveries_are_retried_until_accepted(tmp_path, pg_url, model_root):
    from standardwebhooks import Webhook

    receiver = Receiver(fail_first=1)  # every message fails once, then is accepted
    svc = Service(tmp_path, pg_url, "redis://127.0.0.1:6379/14", model_root, TOPIARY_WEBHOOK_RETRY_SECONDS="[1, 1]", TOPIARY_WEBHOOK_ALLOWED_NETWORKS='["127.0.0.0/8"]')
    try:
        svc.register("tiny", path=str(model_root / "tiny"))
        endpoint = svc.http.post("/v1/webhook_endpoints", json={"url": receiver.url}).json()
        svc.start_worker()
        job_id = svc.submit("tiny", BODY)
        assert svc.wait(job_id)["status"] == "succeeded"
        deadline = time.monotonic() + 60
        while sum(code == 204 for *_, code in receiver.requests) < 2:
            assert time.monotonic() < deadline, (receiver.requests, svc.log_text())
            time.sleep(0.2)
        verifier = Webhook(endpoint["secret"])
        events = []
        for headers, body, code in receiver.requests:
            payload = verifier.verify(body, {k.lower(): v for k, v in headers.items()})  # raises if forged
            assert payload["data"]["object"]["id"] == job_id
            events.append((payload["type"], headers["webhook-id"], code))
        started = [e for e in events if e[0] == "pruning_job.started"]
        finished = [e for e in events if e[0] == "pruning_job.succeeded"]
        assert [c for *_, c in started] == [500, 204] and [c for *_, c in finished] == [500, 204]
        assert len({m for _, m, _ in finished}) == 1  # a retry keeps its webhook-id
        log = svc.http.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries").json()["data"]
        assert {(d["event_type"], d["status"], d["attempts"]) for d in log} == {
            ("pruning_job.started", "delivered", 2), ("pruning_job.succeeded", "delivered", 2)}
        assert json.loads(receiver.requests[-1][1])["data"]["object"]["result"]["sparsity_achieved"] == 0.5
    finally:
        svc.close()
        receiver.server.shutdown()
