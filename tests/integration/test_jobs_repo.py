"""The job repository on PostgreSQL and SQLite: what a claim does to the row."""

from __future__ import annotations

import secrets

from db import jobs, keys
from db import status as st
from db.engine import sessionmaker_for


def test_claim_is_atomic_and_starts_a_fresh_attempt(db_url):
    with sessionmaker_for(db_url)() as s:
        tenant = keys.create_key(s, f"t-{secrets.token_hex(3)}", ["jobs:read"])[0].tenant_id
        job = jobs.create_job(s, tenant, {"model": "m", "method": "wanda"}, {})
        job.progress = {"stage": "pruning", "layers_done": 3, "layers_total": 14, "percent": 21.4}  # a lost attempt's
        s.commit()
        job_id = job.id
    with sessionmaker_for(db_url)() as s:
        assert jobs.claim(s, job_id, "worker-a", 30)
        s.commit()
    with sessionmaker_for(db_url)() as s:
        assert not jobs.claim(s, job_id, "worker-b", 30)  # a second delivery finds it taken
        s.rollback()
        job = s.get(jobs.Job, job_id)
        assert (job.status, job.lease_owner, job.attempt) == (st.RUNNING, "worker-a", 1)
        assert job.progress == jobs.fresh_progress("starting") and job.started_at is not None
