"""Schedules: the REST resource (PostgreSQL and SQLite), duplicate-proof firing, misfires, and a
real worker supervisor firing one into a job that runs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from db import schedules
from db.engine import sessionmaker_for
from db.models import Job, Schedule
from service_fixtures import BODY, MINIMAL, Service

NIGHTLY = {"name": "nightly-alps", "cron": "0 2 * * *", "timezone": "Europe/Berlin",
           "job": {**MINIMAL, "method": "alps", "sparsity": 0.7, "metadata": {"team": "nlp"}}}


def test_create_list_update_delete(client, make_key):
    auth = make_key()
    r = client.post("/v1/schedules", json=NIGHTLY, headers=auth)
    assert r.status_code == 201, r.text
    sch = r.json()
    assert sch["id"].startswith("sch_") and sch["spec"]["method"] == "alps" and sch["metadata"] == {"team": "nlp"}
    nxt = datetime.fromisoformat(sch["next_fire_at"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (nxt.hour, nxt.minute) == (2, 0) and timedelta(0) < nxt - datetime.now(UTC) <= timedelta(days=1)
    assert client.post("/v1/schedules", json=NIGHTLY, headers=auth).status_code == 409
    assert [x["id"] for x in client.get("/v1/schedules", headers=auth).json()["data"]] == [sch["id"]]
    assert client.get(f"/v1/schedules/{sch['id']}", headers=make_key()).status_code == 404  # other tenant
    r = client.patch(f"/v1/schedules/{sch['id']}", json={"enabled": False, "cron": "30 3 * * 1"}, headers=auth)
    assert r.status_code == 200 and r.json()["enabled"] is False
    nxt = datetime.fromisoformat(r.json()["next_fire_at"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (nxt.weekday(), nxt.hour, nxt.minute) == (0, 3, 30)  # Mondays 03:30 local
    assert client.delete(f"/v1/schedules/{sch['id']}", headers=auth).status_code == 204
    assert client.get(f"/v1/schedules/{sch['id']}", headers=auth).status_code == 404


@pytest.mark.parametrize("patch,field", [({"cron": "61 * * * *"}, "cron"), ({"cron": "@reboot"}, "cron"),
                                         ({"timezone": "Mars/Olympus"}, "timezone"),
                                         ({"job": {**MINIMAL, "pattern": "5:4"}}, "job")])
def test_bad_schedules_point_at_the_field(client, make_key, patch, field):
    r = client.post("/v1/schedules", json={**NIGHTLY, **patch}, headers=make_key())
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.json()


def _schedule(client, auth, db_url, slot: datetime, **extra) -> str:
    """A schedule whose next slot is `slot` (as if it had been created before it)."""
    sch = client.post("/v1/schedules", json={**NIGHTLY, **extra}, headers=auth).json()
    with sessionmaker_for(db_url)() as s:
        s.get(Schedule, sch["id"]).next_fire_at = slot
        s.commit()
    return sch["id"]


def _jobs(db_url, schedule_id):
    with sessionmaker_for(db_url)() as s:
        return list(s.query(Job).filter(Job.schedule_id == schedule_id))


def test_a_slot_fires_once_even_with_racing_tickers(client, make_key, db_url):
    berlin = ZoneInfo("Europe/Berlin")
    slot = datetime(2026, 11, 20, 2, 0, tzinfo=berlin).astimezone(UTC)
    schedule_id = _schedule(client, make_key(), db_url, slot)
    now = slot + timedelta(seconds=40)
    created, barrier = [], threading.Barrier(4)

    def tick():
        barrier.wait()
        with sessionmaker_for(db_url)() as s:
            created.extend(schedules.fire_due(s, now))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fired = _jobs(db_url, schedule_id)
    assert len(fired) == 1 and created == [fired[0].id]
    assert fired[0].scheduled_for.replace(tzinfo=UTC) == slot and fired[0].metadata_ == {"team": "nlp"}
    with sessionmaker_for(db_url)() as s:
        assert schedules.fire_due(s, now) == []  # nothing left to fire at this time
        nxt = s.get(Schedule, schedule_id).next_fire_at.replace(tzinfo=UTC)
    assert nxt == datetime(2026, 11, 21, 2, 0, tzinfo=berlin).astimezone(UTC)
    listed = client.get(f"/v1/jobs?schedule_id={schedule_id}", headers=make_key()).json()["data"]
    assert listed == []  # another tenant sees none of it


@pytest.mark.parametrize("misfire,expected", [("run_latest", 1), ("skip", 0)])
def test_misfires_after_downtime(client, make_key, db_url, misfire, expected):
    """Down for three nights: run_latest fires once (for the last missed night), skip fires none."""
    berlin = ZoneInfo("Europe/Berlin")
    first_missed = datetime(2026, 11, 17, 2, 0, tzinfo=berlin).astimezone(UTC)
    schedule_id = _schedule(client, make_key(), db_url, first_missed, misfire=misfire, name=f"n-{misfire}")
    now = datetime(2026, 11, 20, 9, 0, tzinfo=berlin).astimezone(UTC)
    with sessionmaker_for(db_url)() as s:
        schedules.fire_due(s, now)
    fired = _jobs(db_url, schedule_id)
    assert len(fired) == expected
    if fired:
        assert fired[0].scheduled_for.replace(tzinfo=UTC) == datetime(2026, 11, 20, 2, 0, tzinfo=berlin)


def test_worker_fires_a_due_schedule_into_a_job_that_runs(tmp_path, model_root):
    """A real supervisor (its sweep every second) fires the schedule; the job runs to the end."""
    from service_fixtures import alembic, postgres_database

    with postgres_database() as url:
        alembic(url, "upgrade", "head")
        svc = Service(tmp_path, url, "redis://127.0.0.1:6379/14", model_root)
        try:
            svc.register("tiny", path=str(model_root / "tiny"))
            r = svc.http.post("/v1/schedules", json={"name": "yearly", "cron": "0 0 1 1 *",
                                                     "job": {**BODY, "model": "tiny"}})
            assert r.status_code == 201, r.text
            schedule_id = r.json()["id"]
            # a yearly cron made due now: it fires once, however slow the job (an every-minute cron
            # fired a second job on a loaded machine, and last_job_id moved on to it)
            with sessionmaker_for(url)() as s:
                s.get(Schedule, schedule_id).next_fire_at = datetime.now(UTC) - timedelta(seconds=1)
                s.commit()
            svc.start_worker()
            deadline = datetime.now() + timedelta(seconds=60)
            while not (listed := svc.http.get(f"/v1/jobs?schedule_id={schedule_id}").json()["data"]):
                assert datetime.now() < deadline, svc.log_text()
                time.sleep(0.3)
            job = svc.wait(listed[0]["id"])
            assert job["status"] == "succeeded" and job["schedule_id"] == schedule_id and job["scheduled_for"]
            assert svc.http.get(f"/v1/schedules/{schedule_id}").json()["last_job_id"] == job["id"]
        finally:
            svc.close()
            sessionmaker_for(url).kw["bind"].dispose()
