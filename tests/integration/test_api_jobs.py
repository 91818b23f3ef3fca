"""Jobs: submission, validation, auth and tenancy, idempotency, listing, cancel, delete."""

import copy
import threading
import uuid

import pytest

from service_fixtures import MINIMAL

PROBLEM = "application/problem+json"


def test_minimal_body_is_accepted_and_normalized(client, make_key):
    r = client.post("/v1/jobs", json=MINIMAL, headers=make_key())
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["id"].startswith("pj_") and job["status"] == "queued" and job["object"] == "pruning_job"
    assert job["error"] is None and job["progress"]["stage"] == "queued" and job["created_at"]
    spec = job["spec"]
    assert spec["pattern"] == "unstructured" and spec["sparsity"] == 0.5 and spec["device"] == "auto"
    assert spec["calibration"] == MINIMAL["calibration"]
    assert spec["evaluation"]["limit"] == 2 and spec["model_source"] == {"kind": "bundled", "source": "smollm2-135m"}


def test_pattern_replaces_sparsity(client, make_key):
    body = {**MINIMAL, "method": "alps", "pattern": "2:4"}
    body.pop("sparsity")
    r = client.post("/v1/jobs", json=body, headers=make_key())
    assert r.status_code == 201 and r.json()["spec"]["sparsity"] == 0.5 and r.json()["spec"]["pattern"] == "2:4"


BAD_SPECS = [  # (what a client sent, the field the 422 must name)
    ({"sparsity": 1.0}, "sparsity"),
    ({"sparsity": -0.1}, "sparsity"),
    ({"method": "prune-it"}, "method"),
    ({"pattern": "4:4"}, "pattern"),
    ({"pattern": "2:4", "sparsity": 0.7}, "sparsity"),
    ({"quantize": {"bits": 4}}, "quantize"),
    ({"method": "sparsegpt", "quantize": {"bits": 9}}, "quantize.bits"),
    ({"method": "alps", "options": {"rho0": "abc"}}, "options.rho0"),
    ({"method": "alps", "options": {"max_iter": 1.5}}, "options.max_iter"),
    ({"method": "alps", "options": {"refit": "maybe"}}, "options.refit"),
    ({"method": "alps", "options": {"rho0": -1.0}}, "options.rho0"),
    ({"method": "alps", "options": {"blocksize": 64}}, "options.blocksize"),  # sparsegpt's option
    ({"method": "sparsegpt", "options": {"percdamp": -1}}, "options.percdamp"),
    ({"method": "pgz", "options": {"group": "column"}}, "options.group"),
    ({"method": "pgz", "options": {"l1": 0.0, "l2": 0.0}}, "options"),
    ({"method": "wanda", "options": {"anything": 1}}, "options.anything"),
    ({"calibration": {"nsamples": 0}}, "calibration.nsamples"),
    ({"calibration": {"source": "imagenet"}}, "calibration.source"),
    ({"evaluation": {"datasets": ["mmlu"]}}, "evaluation.datasets.0"),
    ({"evaluation": {"tasks": ["piqa", "mmlu"]}}, "evaluation.tasks.1"),
    ({"evaluation": {"tasks": ["piqa"], "task_limit": 0}}, "evaluation.task_limit"),
    ({"evaluation": {"seqlen": 5_000_000}}, "evaluation.seqlen"),
    ({"device": "tpu"}, "device"),
    ({"dtype": "int8"}, "dtype"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"surprise": 1}, "surprise"),
    ({"sparsity_profile": {"kind": "owl", "owl_lambda": 0.9}}, "sparsity_profile.owl_lambda"),
    ({"sparsity_profile": {"kind": "owl", "owl_m": 0}}, "sparsity_profile.owl_m"),
    ({"sparsity_profile": {"kind": "fancy"}}, "sparsity_profile.kind"),
    ({"sparsity_profile": {"kind": "rules"}}, "sparsity_profile.rules"),
    ({"sparsity_profile": {"rules": [{"match": "mlp", "sparsity": 0}, {"match": "(", "sparsity": 0}]}},
     "sparsity_profile.rules[1].match"),
    ({"sparsity_profile": {"rules": [{"match": "mlp", "sparsity": 1.5}]}}, "sparsity_profile.rules[0].sparsity"),
    # checked against the bundled model's layers before queueing (spec.layout)
    ({"sparsity_profile": {"rules": [{"match": r"layers\.99\.", "sparsity": 0}]}}, "sparsity_profile.rules[0].match"),
    ({"sparsity": 0.7, "sparsity_profile": {"rules": [{"match": "mlp", "sparsity": 0}]}}, "sparsity_profile.rules"),
    ({"pattern": "2:4", "sparsity_profile": {"kind": "owl"}}, "sparsity_profile.kind"),
    ({"pattern": "2:4", "sparsity_profile": {"rules": [{"match": "mlp", "sparsity": 0.3}]}},
     "sparsity_profile.rules[0].sparsity"),
    ({"method": "wanda", "dense_target": 0.3}, "dense_target"),
    ({"method": "alps", "dense_target": 1.5}, "dense_target"),
    ({"method": "sparsegpt", "quantize": {"bits": 4, "format": "gguf"}}, "quantize.format"),
    ({"method": "sparsegpt", "quantize": {"bits": 4, "group_size": 100}}, "quantize.group_size"),  # 576 % 100
]


@pytest.mark.parametrize("patch,field", BAD_SPECS)
def test_validation_errors_point_at_the_field(client, make_key, patch, field):
    key = make_key()
    body = {**copy.deepcopy(MINIMAL), **patch}
    r = client.post("/v1/jobs", json=body, headers=key)
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["type"] == "/problems/validation-error" and problem["status"] == 422
    assert any(e["field"] == field for e in problem["errors"]), problem["errors"]
    assert "Traceback" not in r.text
    assert client.get("/v1/jobs", headers=key).json()["data"] == []  # no job row was written


def test_unknown_model_and_malformed_json(client, make_key):
    r = client.post("/v1/jobs", json={**MINIMAL, "model": "no-such-model"}, headers=make_key())
    assert r.status_code == 422 and r.json()["type"] == "/problems/unknown-model"
    r = client.post("/v1/jobs", content=b'{"model": "smollm2-135m",\n "method": wanda}',
                    headers={**make_key(), "content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)
    assert "malformed JSON at line 2, column 12" in r.json()["detail"] and r.json()["errors"][0]["field"] == ""


def test_auth_scopes_and_tenancy(client, make_key):
    assert client.get("/v1/jobs").status_code == 401
    r = client.get("/v1/jobs", headers={"Authorization": "Bearer tpk_deadbeef_nope"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    reader = make_key(["jobs:read"])
    r = client.post("/v1/jobs", json=MINIMAL, headers=reader)
    assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden"
    owner, stranger = make_key(), make_key()
    job_id = client.post("/v1/jobs", json=MINIMAL, headers=owner).json()["id"]
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events", f"/v1/jobs/{job_id}/artifacts"):
        assert client.get(path, headers=stranger).status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=stranger).status_code == 404
    assert client.get("/v1/jobs", headers=stranger).json()["data"] == []
    assert client.get(f"/v1/jobs/{job_id}", headers=owner).status_code == 200


def test_idempotency_key(client, make_key):
    auth = make_key()
    headers = {**auth, "Idempotency-Key": "abc-123"}
    first = client.post("/v1/jobs", json=MINIMAL, headers=headers)
    again = client.post("/v1/jobs", json=MINIMAL, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(client.get("/v1/jobs", headers=auth).json()["data"]) == 1
    other = client.post("/v1/jobs", json={**MINIMAL, "sparsity": 0.6}, headers=headers)
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reuse"
    # the same key in another tenant is a different key
    assert client.post("/v1/jobs", json=MINIMAL, headers={**make_key(), "Idempotency-Key": "abc-123"}).status_code == 201


def test_idempotency_in_flight_is_409(client, make_key, db_url):
    """A first request that has reserved the key but not answered yet: the retry gets 409."""
    from sqlalchemy import update

    from db.engine import sessionmaker_for
    from db.models import IdempotencyRecord

    auth = {**make_key(), "Idempotency-Key": "busy"}
    assert client.post("/v1/jobs", json=MINIMAL, headers=auth).status_code == 201
    with sessionmaker_for(db_url)() as s:  # back to the state between reservation and response
        s.execute(update(IdempotencyRecord).where(IdempotencyRecord.key == "busy").values(status_code=None, response=None))
        s.commit()
    r = client.post("/v1/jobs", json=MINIMAL, headers=auth)
    assert r.status_code == 409 and r.json()["type"] == "/problems/idempotency-conflict"


def test_concurrent_duplicates_create_one_job(client, make_key):
    auth = {**make_key(), "Idempotency-Key": "race"}
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(client.post("/v1/jobs", json=MINIMAL, headers=auth).status_code))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(codes) <= {201, 409} and 201 in codes
    assert len(client.get("/v1/jobs", headers=auth).json()["data"]) == 1


def test_list_newest_first_with_cursor_and_filters(client, make_key):
    auth = make_key()
    ids = []
    for i, method in enumerate(["wanda", "sparsegpt", "alps", "wanda", "magnitude"]):
        body = {**MINIMAL, "method": method, "metadata": {"team": "a" if i % 2 else "b"}}
        ids.append(client.post("/v1/jobs", json=body, headers=auth).json()["id"])
    page1 = client.get("/v1/jobs?limit=2", headers=auth).json()
    assert page1["object"] == "list" and page1["has_more"] is True
    assert [j["id"] for j in page1["data"]] == ids[::-1][:2]
    page2 = client.get(f"/v1/jobs?limit=2&after={page1['last_id']}", headers=auth).json()
    page3 = client.get(f"/v1/jobs?limit=2&after={page2['last_id']}", headers=auth).json()
    assert [j["id"] for j in page2["data"] + page3["data"]] == ids[::-1][2:] and page3["has_more"] is False
    assert {j["method"] for j in client.get("/v1/jobs?method=wanda", headers=auth).json()["data"]} == {"wanda"}
    assert len(client.get("/v1/jobs?metadata[team]=a", headers=auth).json()["data"]) == 2
    assert client.get("/v1/jobs?status=succeeded", headers=auth).json()["data"] == []
    assert client.get("/v1/jobs?limit=101", headers=auth).status_code == 422
    assert client.get("/v1/jobs?after=pj_missing", headers=auth).status_code == 400


def test_cancel_and_delete(client, make_key, db_url):
    from db import jobs
    from db.engine import sessionmaker_for

    auth = make_key()
    queued = client.post("/v1/jobs", json=MINIMAL, headers=auth).json()["id"]
    r = client.post(f"/v1/jobs/{queued}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["error"]["code"] == "cancelled"
    assert client.post(f"/v1/jobs/{queued}/cancel", headers=auth).status_code == 409
    kinds = [e["data"]["status"] for e in client.get(f"/v1/jobs/{queued}/events", headers=auth).json()["data"]]
    assert kinds == ["queued", "cancelled"]

    running = client.post("/v1/jobs", json=MINIMAL, headers=auth).json()["id"]
    with sessionmaker_for(db_url)() as s:
        assert jobs.claim(s, running, "worker-1", 60)
        s.commit()
    assert client.delete(f"/v1/jobs/{running}", headers=auth).status_code == 409
    r = client.post(f"/v1/jobs/{running}/cancel", headers=auth)
    assert r.json()["status"] == "cancelling" and r.json()["attempt"] == 1

    assert client.delete(f"/v1/jobs/{queued}", headers=auth).status_code == 204
    assert client.get(f"/v1/jobs/{queued}", headers=auth).status_code == 404


def test_errors_are_problems_everywhere(client, make_key):
    r = client.get("/v1/nowhere")
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)
    big = {**MINIMAL, "metadata": {"k": "v" * 400}, "options": {f"o{i}": "x" * 2000 for i in range(40)}}
    r = client.post("/v1/jobs", json=big, headers=make_key())
    assert r.status_code == 413 and r.json()["type"] == "/problems/payload-too-large"


@pytest.mark.parametrize("method,path,body,field", [
    ("post", "/v1/jobs", {**MINIMAL, "metadata": {"team": "a\x00b"}}, "metadata.team"),
    ("post", "/v1/jobs", {**MINIMAL, "options": {"rho0\x00": 0.1}}, "options.rho0"),
    ("post", "/v1/models", {"name": "m", "path": "/models/\x00"}, "path"),  # was a 500 from os.path.realpath
    ("post", "/v1/schedules", {"name": "n", "cron": "0 2 * * *", "timezone": "UTC\x00", "job": MINIMAL}, "timezone"),
    ("get", "/v1/jobs/pj_%00", None, "url"),  # PostgreSQL refuses NUL in any compared text
    ("get", "/v1/jobs?status=queued%00", None, "url"),
])
def test_nul_characters_are_refused_not_a_500(client, make_key, method, path, body, field):
    r = client.request(method.upper(), path, json=body, headers=make_key())
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM), r.text
    assert r.json()["type"] == "/problems/validation-error"
    assert field in r.json()["detail"] + " ".join(e["field"] for e in r.json().get("errors", []))


def test_health(client, settings):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_job_id_is_enqueued_on_redis_after_commit(settings, make_key, db_url):
    """With a Redis broker the committed job's id lands on the queue under the stable task name."""
    import base64
    import json
    import secrets

    import redis
    from fastapi.testclient import TestClient

    from api.app import create_app

    queue = f"test-{secrets.token_hex(4)}"
    cfg = settings.model_copy(update={"enqueue": True, "broker_url": "redis://127.0.0.1:6379/15", "task_queue": queue})
    r = redis.Redis(host="127.0.0.1", port=6379, db=15)
    try:
        with TestClient(create_app(cfg)) as c:
            job = c.post("/v1/jobs", json=MINIMAL, headers=make_key()).json()
        message = json.loads(r.lpop(queue))
        assert message["headers"]["task"] == "topiary.run_prune_job"
        args = json.loads(base64.b64decode(message["body"]))[0]
        assert args == [job["id"]]
    finally:
        r.delete(queue)


def test_revoked_key_is_refused(client, db_url):
    from db import keys
    from db.engine import sessionmaker_for

    with sessionmaker_for(db_url)() as s:
        record, plaintext = keys.create_key(s, "revokee", ["jobs:read"])
        keys.revoke(s, record)
        s.commit()
    r = client.get("/v1/jobs", headers={"Authorization": f"Bearer {plaintext}"})
    assert r.status_code == 401 and r.json()["detail"] == "the key is unknown or revoked"


def test_methods_are_served_from_the_registry(client, make_key):
    from pruning_core.spec import DECLARED

    r = client.get("/v1/methods", headers=make_key(["jobs:read"]))
    assert r.status_code == 200
    served = {m["name"]: m for m in r.json()["data"]}
    assert list(served) == list(DECLARED)
    alps = {o["name"]: o for o in served["alps"]["options"]}
    assert alps["rho0"]["default"] == 0.1 and alps["rho0"]["exclusiveMinimum"] == 0.0 and alps["rho0"]["description"]
    assert served["magnitude"]["statistics"] == "none" and served["wanda"]["statistics"] == "norms"
    assert served["pgz"]["joint_quantization"] and {o["name"] for o in served["pgz"]["options"]} >= {"group", "iters"}
    assert client.get("/v1/methods").status_code == 401


def test_unknown_list_filters_are_refused(client, make_key):
    key = make_key()
    for query, field in (("status=runing", "status"), ("method=sparsgpt", "method")):
        r = client.get(f"/v1/jobs?{query}", headers=key)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    assert client.get("/v1/jobs?status=queued", headers=key).status_code == 200


def test_openapi_declares_problems_security_and_options(client):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    cancel = doc["paths"]["/v1/jobs/{job_id}/cancel"]["post"]
    assert {"401", "403", "404", "409", "422"} <= set(cancel["responses"]) and cancel["security"] == [{"bearer": []}]
    assert "application/problem+json" in cancel["responses"]["404"]["content"]
    options = doc["components"]["schemas"]["JobCreate"]["properties"]["options"]["x-options-by-method"]
    assert options["sparsegpt"]["properties"]["blocksize"]["minimum"] == 1


def test_admins_list_and_revoke_their_tenants_keys(client, make_key):
    tenant = f"keys-{uuid.uuid4().hex[:6]}"
    admin, user = make_key(["admin"], tenant=tenant), make_key(tenant=tenant)
    stranger = make_key(["admin"])
    assert client.get("/v1/api_keys", headers=user).status_code == 403
    listed = client.get("/v1/api_keys", headers=admin).json()["data"]
    assert len(listed) == 2 and all(set(k) == {"id", "object", "prefix", "scopes", "created_at", "revoked_at"}
                                    for k in listed)  # never the secret or its hash
    user_prefix = "_".join(user["Authorization"].split(" ")[1].split("_")[:2])  # tpk_<8 hex>
    user_key = next(k for k in listed if k["prefix"] == user_prefix)
    assert user_key["scopes"] == ["jobs:read", "jobs:write"] and user_key["revoked_at"] is None
    assert client.get("/v1/jobs", headers=user).status_code == 200  # cached as valid now
    assert client.delete(f"/v1/api_keys/{user_key['id']}", headers=stranger).status_code == 404  # other tenant
    revoked = client.delete(f"/v1/api_keys/{user_key['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    r = client.get("/v1/jobs", headers=user)  # at once, not after the cache expires
    assert r.status_code == 401 and r.json()["type"] == "/problems/unauthorized"
    assert client.delete(f"/v1/api_keys/{user_key['id']}", headers=admin).status_code == 200  # idempotent
    assert client.delete("/v1/api_keys/key_nope", headers=admin).status_code == 404
