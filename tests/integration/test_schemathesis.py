"""Property-based run of every operation in the OpenAPI document (schemathesis): no 5xx, responses
match their declared schemas and content types. Uses its own SQLite database and a real key."""

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from service_fixtures import alembic


def _app_and_key():
    from api.app import create_app
    from db import keys
    from db.engine import sessionmaker_for
    from db.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="topiary-schemathesis-"))
    url = f"sqlite:///{home / 'api.db'}"
    alembic(url, "upgrade", "head")
    with sessionmaker_for(url)() as s:
        _, key = keys.create_key(s, "fuzz", ["jobs:read", "jobs:write"])
        s.commit()
    cfg = Settings(home=home, database_url=url, enqueue=False, allowed_model_roots=[home / "models"])
    return create_app(cfg), key


APP, KEY = _app_and_key()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def no_server_error(ctx, response, case):
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"},
                           checks=[no_server_error, response_schema_conformance, content_type_conformance])
