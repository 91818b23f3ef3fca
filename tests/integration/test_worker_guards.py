"""The worker's own guards, each against the real thing: the heartbeat of an attempt that has
just finished, the model directory swapped for a symlink after registration, webhook deliveries
towards internal addresses, and a cancel that arrives while a job evaluates."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

import httpx
import pytest

from db import jobs, keys
from db import status as st
from db.engine import sessionmaker_for
from db.models import WebhookDelivery, WebhookEndpoint
from service_fixtures import Receiver


def _claimed_job(db_url, owner="w") -> str:
    with sessionmaker_for(db_url)() as s:
        tenant = keys.create_key(s, f"guard-{secrets.token_hex(4)}", ["jobs:read"])[0].tenant_id
        job = jobs.create_job(s, tenant, {"model": "m", "method": "wanda"}, {})
        s.commit()
        assert jobs.claim(s, job.id, owner, 60)
        s.commit()
        return job.id


def test_a_finished_attempt_is_not_taken_for_a_lost_lease(db_url, tmp_path):
    """The job process records its outcome, then tidies up before exiting. Its parent's heartbeat
    must see 'finished by us', not 'lease lost', and leave the process alone."""
    from db.settings import Settings
    from worker.runner import Heartbeat, Runner
    from worker.spare import run_job

    settings = Settings(home=tmp_path, database_url=db_url, lease_seconds=0.3)
    job_id = _claimed_job(db_url)
    heartbeat = Heartbeat(settings, job_id, "w")
    heartbeat.start()
    Runner(settings, job_id, "w")._finish(st.SUCCEEDED, result={})
    # a job process still exiting after recording its outcome (its clean-up takes a while)
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.stdin.readline(); time.sleep(1.5)"],
                            stdin=subprocess.PIPE, text=True)
    assert run_job(proc, job_id, "w", heartbeat.lost.is_set) == 0  # not SIGTERMed
    assert heartbeat.finished.is_set() and not heartbeat.lost.is_set()
    heartbeat.stop.set()

    # another owner taking the job is still a lost lease
    other = _claimed_job(db_url, owner="someone-else")
    lost = Heartbeat(settings, other, "w")
    assert not lost.renew() and lost.lost.is_set() and not lost.finished.is_set()


def test_the_worker_checks_the_model_path_where_it_opens_it(tmp_path):
    from db.settings import Settings
    from pruning_core import errors
    from worker.convert import model_to_open

    root, outside = tmp_path / "models", tmp_path / "secrets"
    (root / "mine").mkdir(parents=True)
    (outside / "theirs").mkdir(parents=True)
    settings = Settings(home=tmp_path, allowed_model_roots=[root])
    registered = {"kind": "local", "source": str(root / "mine")}
    assert model_to_open(registered, settings) == str((root / "mine").resolve())
    (root / "mine").rmdir()  # after registration, the directory becomes a symlink out of the root
    (root / "mine").symlink_to(outside / "theirs")
    with pytest.raises(errors.PathNotAllowed) as caught:
        model_to_open(registered, settings)
    assert caught.value.code == "path-not-allowed"
    with pytest.raises(errors.PathNotAllowed):  # a worker with no allowed roots opens no local model
        model_to_open(registered, Settings(home=tmp_path))
    assert model_to_open({"kind": "hub", "source": "org/model"}, settings) == "org/model"


def _delivery(db_url, url) -> WebhookDelivery:
    with sessionmaker_for(db_url)() as s:
        tenant = keys.create_key(s, f"hook-{secrets.token_hex(4)}", ["jobs:read"])[0].tenant_id
        endpoint = WebhookEndpoint(tenant_id=tenant, url=url, events=["pruning_job.succeeded"],
                                   secret="whsec_" + "A" * 32)
        s.add(endpoint)
        s.flush()
        d = WebhookDelivery(endpoint_id=endpoint.id, event_type="pruning_job.succeeded", payload={"id": "m"})
        s.add(d)
        s.commit()
        return d


def test_deliveries_never_reach_internal_addresses_or_show_their_answers(db_url, tmp_path):
    """The endpoint row holds a URL that passed the API's check and now leads inside (DNS
    changed, say): the deliverer resolves again, refuses, and records only a fixed reason."""
    from db.settings import Settings
    from worker.webhooks import Deliverer

    receiver = Receiver(fail_first=10**6)  # answers 500
    closed = f"http://127.0.0.1:{_closed_port()}/hook"
    try:
        strict = Deliverer(Settings(home=tmp_path, database_url=db_url))
        allowing = Deliverer(Settings(home=tmp_path, database_url=db_url, webhook_allowed_networks=["127.0.0.0/8"]))
        with httpx.Client(timeout=5, follow_redirects=False) as client:
            for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost"), "http://2130706433:9/"):
                assert strict.post(client, url, _delivery(db_url, url), "whsec_" + "A" * 32) == (
                    False, None, "address not allowed")
            assert receiver.requests == []  # nothing was sent
            # an allowed network: the receiver's 500 is kept as a status code, never its body
            assert allowing.post(client, receiver.url, _delivery(db_url, receiver.url), "whsec_" + "A" * 32) == (
                False, 500, None)
            assert len(receiver.requests) == 1
            # a closed port and a dead host read the same: no port scanning through the log
            assert allowing.post(client, closed, _delivery(db_url, closed), "whsec_" + "A" * 32) == (
                False, None, "no response")
    finally:
        receiver.server.shutdown()


def _closed_port() -> int:
    from service_fixtures import free_port

    return free_port()


def test_a_cancel_is_honoured_between_evaluation_batches(tiny_model_dir):
    """Evaluation reports after every batch, so a cancel does not wait for a whole dataset."""
    from pruning_core import CalibrationSpec, Cancelled, PruneSpec, pipeline

    calls: list[tuple[str, int]] = []

    def progress(p):
        calls.append((p.stage, p.layers_done))
        if sum(stage == "evaluating-dense" for stage, _ in calls) == 3:
            raise Cancelled()

    job = pipeline.JobSpec(model=str(tiny_model_dir), device="cpu",
                       spec=PruneSpec(method="magnitude", sparsity=0.5,
                                      calibration=CalibrationSpec("c4", 2, 32, 0)),
                       evaluation=pipeline.EvalSpec(datasets=("wikitext2",), limit=12, seqlen=32))
    started = time.monotonic()
    with pytest.raises(Cancelled):
        pipeline.run(job, tiny_model_dir.parent / f"out-{secrets.token_hex(3)}", progress=progress)
    assert time.monotonic() - started < 120
    assert [stage for stage, _ in calls].count("evaluating-dense") == 3  # stopped inside the dataset
    assert "pruning" not in {stage for stage, _ in calls}
