"""`alembic upgrade head` on an empty database, then `alembic check` finds nothing to generate,
and a downgrade to base removes every table; on PostgreSQL and SQLite."""

import pytest
from sqlalchemy import create_engine, inspect

from service_fixtures import alembic, postgres_database


@pytest.fixture(params=["postgres", "sqlite"])
def empty_db(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
    else:
        with postgres_database() as url:
            yield url


def tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_check_downgrade(empty_db):
    alembic(empty_db, "upgrade", "head")
    assert {"jobs", "job_events", "api_keys", "tenants", "artifacts", "models", "datasets", "idempotency_records"} <= tables(empty_db)
    alembic(empty_db, "check")  # raises if the models and the migrations disagree
    alembic(empty_db, "downgrade", "base")
    assert tables(empty_db) == set()


def test_concurrent_upgrades_of_a_fresh_database_all_succeed():
    """The API and every worker run `upgrade head` at start-up, often at the same moment (docker
    compose). Separate processes, as in production: each must exit 0 and the schema be whole."""
    import os
    import subprocess
    import sys

    with postgres_database() as url:
        env = {**os.environ, "TOPIARY_DATABASE_URL": url}
        procs = [subprocess.Popen([sys.executable, "-m", "topiary.cli", "db", "upgrade"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        assert "jobs" in tables(url)
        alembic(url, "check")
