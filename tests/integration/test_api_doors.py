"""The API's doors against input that once got through or broke them (PostgreSQL and SQLite):
bodies larger than the limit without a Content-Length, jobs asking for more than a deployment
allows, crons that never fire, event ids past the column's range, webhook URLs that lead inside."""

from __future__ import annotations

import json
import threading

import pytest

from service_fixtures import MINIMAL


def _job_count(client, auth) -> int:
    return len(client.get("/v1/jobs?limit=100", headers=auth).json()["data"])


def test_a_chunked_body_over_the_limit_is_refused(client, make_key, settings):
    auth = make_key()
    body = json.dumps({**MINIMAL, "metadata": {"pad": "x" * 400}}).encode()
    padding = b" " * (settings.max_body_bytes + 1)  # JSON allows trailing whitespace: a valid, huge body

    def chunks():  # no Content-Length: the transfer is chunked
        yield body
        for i in range(0, len(padding), 8192):
            yield padding[i:i + 8192]

    r = client.post("/v1/jobs", content=chunks(), headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["type"] == "/problems/payload-too-large"
    assert _job_count(client, auth) == 0
    small = client.post("/v1/jobs", content=iter([body]), headers={**auth, "content-type": "application/json"})
    assert small.status_code == 201, small.text  # a chunked body under the limit still works


def test_a_job_asking_for_too_much_is_refused_at_submission(client, make_key, settings):
    auth = make_key()
    huge = {**MINIMAL, "calibration": {"source": "c4", "nsamples": 4096, "seqlen": 32768}}
    r = client.post("/v1/jobs", json=huge, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "calibration.nsamples"
    assert str(settings.max_calibration_tokens) in r.json()["errors"][0]["message"]
    r = client.post("/v1/schedules", json={"name": "big", "cron": "0 2 * * *", "job": huge}, headers=auth)
    assert r.status_code == 422
    assert _job_count(client, auth) == 0
    fits = {**MINIMAL, "calibration": {"source": "c4", "nsamples": 128, "seqlen": 2048}}
    assert client.post("/v1/jobs", json=fits, headers=auth).status_code == 201


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *"])
def test_a_cron_that_never_fires_is_a_422(client, make_key, cron):
    auth = make_key()
    r = client.post("/v1/schedules", json={"name": "never", "cron": cron, "job": MINIMAL}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cron", r.text
    ok = client.post("/v1/schedules", json={"name": "nightly", "cron": "0 2 * * *", "job": MINIMAL}, headers=auth)
    assert ok.status_code == 201
    r = client.patch(f"/v1/schedules/{ok.json()['id']}", json={"cron": cron}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cron"


def test_event_ids_past_the_column_range(client, make_key, db_url):
    from test_api_streams import _advance

    auth = make_key()
    job_id = client.post("/v1/jobs", json=MINIMAL, headers=auth).json()["id"]
    _advance(db_url, job_id, "evaluating", "succeeded", delay=0)
    r = client.get(f"/v1/jobs/{job_id}/events?after=2147483648", headers=auth)
    assert r.status_code == 200 and r.json()["data"] == []
    # resuming past the terminal event: an empty stream that ends, not an aborted one
    done = threading.Event()
    with client.stream("GET", f"/v1/jobs/{job_id}/events",
                       headers={**auth, "Accept": "text/event-stream", "Last-Event-ID": "9999999999"}) as r:
        assert r.status_code == 200
        assert "".join(r.iter_text()).strip() == ""
        done.set()
    assert done.is_set()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "http://localhost/hook", "http://[::1]/hook", "http://2130706433/hook",
    "http://0x7f.1/hook", "http://169.254.169.254/latest/meta-data", "http://10.0.0.5/hook",
    "http://192.168.1.1/hook", "http://[::ffff:127.0.0.1]/hook", "http://0.0.0.0:5432/"])
def test_webhook_urls_that_lead_inside_are_refused(client, make_key, url):
    auth = make_key()
    r = client.post("/v1/webhook_endpoints", json={"url": url}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url", r.text
    ok = client.post("/v1/webhook_endpoints", json={"url": "https://hooks.example.com/topiary"}, headers=auth)
    assert ok.status_code == 201
    r = client.patch(f"/v1/webhook_endpoints/{ok.json()['id']}", json={"url": url}, headers=auth)
    assert r.status_code == 422
    assert client.get("/v1/webhook_endpoints", headers=auth).json()["data"][0]["url"].startswith("https://hooks")


def test_dtype_is_part_of_the_job_spec(client, make_key):
    auth = make_key()
    assert client.post("/v1/jobs", json=MINIMAL, headers=auth).json()["spec"]["dtype"] == "auto"
    r = client.post("/v1/jobs", json={**MINIMAL, "dtype": "bfloat16"}, headers=auth)
    assert r.status_code == 201 and r.json()["spec"]["dtype"] == "bfloat16"
    r = client.post("/v1/jobs", json={**MINIMAL, "dtype": "float64"}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dtype"
    assert _job_count(client, auth) == 2
