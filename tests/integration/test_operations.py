"""What an operator sees of the running service (real uvicorn, real `topiary worker`, PostgreSQL
and Redis): Prometheus metrics of the API and of the worker after real jobs, and the worker
registry as workers come and go."""

from __future__ import annotations

import os
import signal
import time

import httpx

from service_fixtures import BODY, SLOW, Receiver, Service


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scrape: dict, name: str, **labels) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def total(scrape: dict, name: str, **labels) -> float:
    """Sum over the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in scrape.items() if n == name and want <= ls)


def worker_scrape(service: Service, timeout: float = 30) -> dict:
    url = f"http://127.0.0.1:{service.env['TOPIARY_WORKER_METRICS_PORT']}/metrics"
    deadline = time.monotonic() + timeout
    while True:
        try:
            return samples(httpx.get(url, timeout=5).text)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_api_and_worker_metrics_move_by_the_jobs_they_ran(service):
    before = samples(service.http.get("/metrics").text)
    service.start_worker()
    good = service.submit("tiny", BODY)
    service.register("ghost", hub_id="nobody-here/no-such-model")
    bad = service.submit("ghost", BODY)
    assert service.wait(good)["status"] == "succeeded" and service.wait(bad)["status"] == "failed"
    layers = len(service.http.get(f"/v1/jobs/{good}/report").json()["layers"])

    after = samples(service.http.get("/metrics").text)
    posts = ("topiary_http_requests_total", {"method": "POST", "route": "/v1/jobs", "status": "201"})
    assert value(after, posts[0], **posts[1]) - value(before, posts[0], **posts[1]) == 2
    assert value(after, "topiary_http_request_duration_seconds_count", method="POST", route="/v1/jobs") >= 2
    # no raw path becomes a series: a job id in the URL is counted under its route template
    assert value(after, "topiary_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="200") >= 1
    assert not any(good in dict(labels).get("route", "") for _, labels in after)
    for status in ("succeeded", "failed"):
        assert value(after, "topiary_jobs", status=status, method="wanda") - \
            value(before, "topiary_jobs", status=status, method="wanda") == 1

    worker = worker_scrape(service)
    assert value(worker, "topiary_job_duration_seconds_count", worker="cpu", method="wanda", outcome="succeeded") == 1
    assert value(worker, "topiary_job_duration_seconds_count", worker="cpu", method="wanda", outcome="failed") == 1
    assert value(worker, "topiary_job_failures_total", worker="cpu", code="model-not-found") == 1
    assert value(worker, "topiary_layer_seconds_count", worker="cpu", method="wanda") == layers
    assert value(worker, "topiary_job_peak_host_memory_bytes_count", worker="cpu", method="wanda") == 1
    assert value(worker, "topiary_job_peak_host_memory_bytes_sum", worker="cpu", method="wanda") > 100 << 20
    assert total(worker, "topiary_job_peak_gpu_memory_bytes_count") == 0  # a CPU worker has no GPU peak


def test_webhook_deliveries_are_counted_by_outcome(tmp_path, pg_url, model_root):
    receiver = Receiver(fail_first=1)  # every message fails once, then is accepted
    svc = Service(tmp_path, pg_url, "redis://127.0.0.1:6379/14", model_root, TOPIARY_WEBHOOK_RETRY_SECONDS="[1, 1]",
                  TOPIARY_WEBHOOK_ALLOWED_NETWORKS='["127.0.0.0/8"]')
    try:
        svc.register("tiny", path=str(model_root / "tiny"))
        svc.http.post("/v1/webhook_endpoints", json={"url": receiver.url})  # started + succeeded
        svc.start_worker()
        assert svc.wait(svc.submit("tiny", BODY))["status"] == "succeeded"
        deadline = time.monotonic() + 60
        while value(worker := worker_scrape(svc), "topiary_webhook_deliveries_total", outcome="delivered") < 2:
            assert time.monotonic() < deadline, svc.log_text()
            time.sleep(0.3)
        assert value(worker, "topiary_webhook_deliveries_total", outcome="retry") == 2  # each message's first 500
        assert value(worker, "topiary_webhook_deliveries_total", outcome="failed") == 0
    finally:
        svc.close()
        receiver.server.shutdown()


def test_the_registry_lists_live_workers_and_drops_a_dead_one(service):
    admin = service.key_headers(["admin"])
    assert service.http.get("/v1/workers").status_code == 403  # jobs:read/write is not enough
    assert service.http.get("/v1/workers", headers=admin).json()["data"] == []
    service.start_worker()
    (w,) = service.live_workers(1)
    os.kill(w["pid"], 0)  # a real, live process
    assert w["device"] == "cpu" and w["name"] == "cpu" and w["gpu_name"] is None and not w["busy"]
    assert w["host_memory_bytes"] > 1 << 30 and w["cpus"] >= 1 and w["queue"] == service.env["TOPIARY_TASK_QUEUE"]

    job = service.submit("deeper", SLOW)
    service.wait_layers(job, 1)
    (w,) = service.http.get("/v1/workers", headers=admin).json()["data"]
    assert w["busy"] and w["current_job_id"] == job
    stranger = service.key_headers(["admin"], tenant="someone-else")
    (seen,) = service.http.get("/v1/workers", headers=stranger).json()["data"]
    assert seen["busy"] and seen["current_job_id"] is None  # another tenant's job is not named
    deadline = time.monotonic() + 30  # the running job's lease is renewed every lease/3 seconds
    while value(worker_scrape(service), "topiary_lease_renewals_total", worker="cpu", result="renewed") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.3)

    os.killpg(service.worker.pid, signal.SIGKILL)  # no goodbye: only the lapsed heartbeat tells
    service.worker.wait()
    stale = float(service.env["TOPIARY_WORKER_STALE_SECONDS"])
    deadline = time.monotonic() + stale + 10
    while service.http.get("/v1/workers", headers=admin).json()["data"]:
        assert time.monotonic() < deadline
        time.sleep(0.3)
