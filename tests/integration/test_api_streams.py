"""Events (list and SSE), artifacts (download with ranges), the report, models and datasets."""

import json
import os
import threading
import time

from sqlalchemy import select

from service_fixtures import MINIMAL


def _tenant(db_url, auth):
    from db.engine import sessionmaker_for
    from db.keys import verify

    with sessionmaker_for(db_url)() as s:
        return verify(s, auth["Authorization"].split()[1]).tenant_id


def _advance(db_url, job_id, *statuses, delay=0.3):
    """Play the worker's part: claim the job, then walk it through `statuses`."""
    from db import jobs
    from db.engine import sessionmaker_for
    from db.models import Job

    time.sleep(delay)
    with sessionmaker_for(db_url)() as s:
        jobs.claim(s, job_id, "test-worker", 60)
        s.commit()
        for status in statuses:
            time.sleep(delay)
            jobs.add_event(s, s.get(Job, job_id), "layer_done", {"layer": status})
            jobs.transition(s, s.get(Job, job_id), status)
            s.commit()


def parse_sse(text):
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            events.append(fields)
    return events


def test_sse_streams_until_terminal_and_resumes(client, make_key, db_url):
    auth = make_key()
    job_id = client.post("/v1/jobs", json=MINIMAL, headers=auth).json()["id"]
    worker = threading.Thread(target=_advance, args=(db_url, job_id, "evaluating", "succeeded"))
    worker.start()
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={**auth, "Accept": "text/event-stream"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())  # returns only because the stream closes after the terminal event
    worker.join()
    events = parse_sse(body)
    statuses = [json.loads(e["data"])["data"].get("status") for e in events if e["event"] == "status"]
    assert statuses == ["queued", "running", "evaluating", "succeeded"]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    resume_from = ids[1]
    with client.stream("GET", f"/v1/jobs/{job_id}/events",
                       headers={**auth, "Accept": "text/event-stream", "Last-Event-ID": str(resume_from)}) as r:
        resumed = parse_sse("".join(r.iter_text()))
    assert [int(e["id"]) for e in resumed] == ids[2:]
    listed = client.get(f"/v1/jobs/{job_id}/events?after={resume_from}&limit=2", headers=auth).json()
    assert [e["id"] for e in listed["data"]] == ids[2:4] and listed["has_more"] is True


def _publish_fake_output(settings, db_url, job_id, tenant_id, tmp_path):
    """What the worker does at the end of a job: publish the output directory, record artifacts."""
    from db.artifacts import LocalStore
    from db.engine import sessionmaker_for
    from db.models import Artifact

    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "weights.bin").write_bytes(os.urandom(300_000))
    (out / "report.json").write_text(json.dumps({"method": "wanda", "sparsity_achieved": 0.5}))
    files = LocalStore(settings.artifacts).publish_dir(f"jobs/{job_id}", out)
    with sessionmaker_for(db_url)() as s:
        for f in files:
            s.add(Artifact(tenant_id=tenant_id, job_id=job_id, name=f.name, location=f.location, size=f.size, sha256=f.sha256))
        s.commit()
    return (out / "model" / "weights.bin").read_bytes()


def test_artifacts_download_with_ranges_and_report(client, make_key, db_url, settings, tmp_path):
    auth = make_key()
    job_id = client.post("/v1/jobs", json=MINIMAL, headers=auth).json()["id"]
    assert client.get(f"/v1/jobs/{job_id}/report", headers=auth).status_code == 404
    payload = _publish_fake_output(settings, db_url, job_id, _tenant(db_url, auth), tmp_path)
    listing = client.get(f"/v1/jobs/{job_id}/artifacts", headers=auth).json()["data"]
    assert [a["name"] for a in listing] == ["model/weights.bin", "report.json"]
    art = listing[0]
    url = f"/v1/artifacts/{art['id']}/content"
    full = client.get(url, headers=auth)
    assert full.status_code == 200 and full.content == payload
    assert full.headers["etag"] == f'"{art["sha256"]}"' and full.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={**auth, "Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == payload[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(payload)}"
    assert client.get(url, headers={**auth, "Range": "bytes=-10"}).content == payload[-10:]
    stale = client.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and len(stale.content) == len(payload)  # changed: whole file
    bad = client.get(url, headers={**auth, "Range": f"bytes={len(payload)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(payload)}"
    assert client.get(url, headers={**auth, "If-None-Match": full.headers["etag"]}).status_code == 304
    assert client.get(url, headers=make_key()).status_code == 404  # another tenant
    assert client.get(f"/v1/jobs/{job_id}/report", headers=auth).json()["sparsity_achieved"] == 0.5


def test_download_links_stand_in_for_the_key_on_their_own_path(client, make_key, db_url, settings, tmp_path):
    """What the dashboard hands the browser: a signed link that streams without a header, for
    one path, until it expires or its key is revoked."""
    import tarfile
    from io import BytesIO

    from db import keys
    from db.engine import sessionmaker_for
    from db.models import ApiKey

    auth = make_key()
    job_id = client.post("/v1/jobs", json=MINIMAL, headers=auth).json()["id"]
    payload = _publish_fake_output(settings, db_url, job_id, _tenant(db_url, auth), tmp_path)
    art, report = client.get(f"/v1/jobs/{job_id}/artifacts", headers=auth).json()["data"]
    link = client.post(f"/v1/artifacts/{art['id']}/link", headers=auth).json()
    assert link["object"] == "download_link" and link["url"].startswith(f"/v1/artifacts/{art['id']}/content?link=")
    got = client.get(link["url"])  # no Authorization header
    assert got.status_code == 200 and got.content == payload
    assert client.get(link["url"], headers={"Range": "bytes=0-9"}).content == payload[:10]
    token = link["url"].split("link=")[1]
    other = client.get(f"/v1/artifacts/{report['id']}/content?link={token}")  # another file: refused
    assert other.status_code == 401 and other.json()["title"] == "Invalid download link"
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/v1/artifacts/{art['id']}/content?link={tampered}").status_code == 401
    archive = client.post(f"/v1/jobs/{job_id}/artifacts/archive/link", headers=auth).json()
    with tarfile.open(fileobj=BytesIO(client.get(archive["url"]).content)) as tar:
        assert tar.getnames() == ["model/weights.bin", "report.json"]
    assert client.post(f"/v1/artifacts/{art['id']}/link", headers=make_key()).status_code == 404  # another tenant
    with sessionmaker_for(db_url)() as s:
        record = s.scalar(select(ApiKey).where(ApiKey.prefix == token.split(".")[0]))
        path = f"/v1/artifacts/{art['id']}/content"
        old, _ = keys.sign_link(record, path, time.time() - keys.LINK_SECONDS - 1)
        assert keys.verify_link(s, old, path, time.time()) is None  # expired
        keys.revoke(s, record)
        s.commit()
    assert client.get(f"/v1/artifacts/{art['id']}/content?link={old}").status_code == 401
    assert client.get(link["url"]).status_code == 401  # revoked with its key


def test_register_models_inside_allowed_roots_only(client, make_key, settings, tmp_path):
    auth = make_key()
    root = settings.allowed_model_roots[0]
    good = root / "tiny"
    good.mkdir()
    (good / "config.json").write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (root / "escape").symlink_to(outside)
    r = client.post("/v1/models", json={"name": "tiny", "path": str(good)}, headers=auth)
    assert r.status_code == 201 and r.json()["kind"] == "local"
    for path in (str(outside), f"{root}/tiny/../../outside", str(root / "escape")):
        r = client.post("/v1/models", json={"name": "x", "path": path}, headers=auth)
        assert r.status_code == 403 and r.json()["type"] == "/problems/path-not-allowed", path
    assert client.post("/v1/models", json={"name": "tiny", "path": str(good)}, headers=auth).status_code == 409
    assert client.post("/v1/models", json={"name": "hubby", "hub_id": "org/model"}, headers=auth).status_code == 201
    names = [m["name"] for m in client.get("/v1/models", headers=auth).json()["data"]]
    assert names == ["smollm2-135m", "hubby", "tiny"]
    job = client.post("/v1/jobs", json={**MINIMAL, "model": "tiny"}, headers=auth).json()
    assert job["spec"]["model_source"] == {"kind": "local", "source": str(good.resolve())}
    assert client.post("/v1/jobs", json={**MINIMAL, "model": "tiny"}, headers=make_key()).status_code == 422


def test_dataset_upload_and_use(client, make_key):
    auth = make_key()
    r = client.post("/v1/datasets?name=mytext&format=txt", content=b"hello world " * 100, headers=auth)
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["id"].startswith("ds_") and ds["size"] == 1200
    body = {**MINIMAL, "calibration": {**MINIMAL["calibration"], "source": ds["id"]}}
    job = client.post("/v1/jobs", json=body, headers=auth)
    assert job.status_code == 201 and job.json()["spec"]["calibration"]["location"].startswith("datasets/")
    assert client.post("/v1/jobs", json=body, headers=make_key()).status_code == 422  # not theirs
    big = client.post("/v1/datasets?name=big", content=b"x" * 20_000, headers=auth)
    assert big.status_code == 413
    assert client.post("/v1/datasets?name=empty", content=b"  ", headers=auth).status_code == 422
