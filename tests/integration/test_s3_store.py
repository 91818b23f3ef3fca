"""The S3 artifact store against a real S3-compatible server (moto in server mode, a separate
process), directly and behind the API."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import httpx
import pytest

from service_fixtures import MINIMAL, free_port


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait()


@pytest.fixture
def s3_settings(settings, s3_endpoint, monkeypatch):
    import boto3

    for var, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    bucket = f"topiary-{time.time_ns()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return settings.model_copy(update={"s3_bucket": bucket, "s3_endpoint_url": s3_endpoint})


def test_store_roundtrip(s3_settings, tmp_path):
    from db.artifacts import sha256_file, store_for
    from db.s3 import S3Store

    store = store_for(s3_settings)
    assert isinstance(store, S3Store)
    src = tmp_path / "out"
    (src / "model").mkdir(parents=True)
    (src / "model" / "w.bin").write_bytes(bytes(range(256)) * 1000)
    (src / "report.json").write_text('{"ok": true}')
    files = {f.name: f for f in store.publish_dir("jobs/pj_1", src)}
    assert set(files) == {"model/w.bin", "report.json"}
    assert files["model/w.bin"].sha256 == sha256_file(src / "model" / "w.bin") and files["model/w.bin"].size == 256_000
    assert b"".join(store.read_range("jobs/pj_1/model/w.bin", 10, 19)) == bytes(range(10, 20))
    assert json.loads(store.read_bytes("jobs/pj_1/report.json")) == {"ok": True}
    assert store.local_path("jobs/pj_1/report.json").read_text() == '{"ok": true}'
    with pytest.raises(OverflowError):
        store.put_stream("datasets/big.txt", io.BytesIO(b"x" * 100), max_bytes=10)
    store.delete_prefix("jobs/pj_1")
    with pytest.raises(store.client.exceptions.NoSuchKey):
        store.read_bytes("jobs/pj_1/report.json")


def test_api_serves_s3_artifacts_by_presigned_redirect(s3_settings, make_key, db_url, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from db.artifacts import store_for
    from db.engine import sessionmaker_for
    from db.keys import verify
    from db.models import Artifact

    auth = make_key()
    with TestClient(create_app(s3_settings)) as client:
        ds = client.post("/v1/datasets?name=cal", content=b"calibration text " * 50, headers=auth)
        assert ds.status_code == 201
        job_id = client.post("/v1/jobs", json=MINIMAL, headers=auth).json()["id"]
        out = tmp_path / "out"
        out.mkdir()
        (out / "report.json").write_text('{"method": "wanda"}')
        (out / "weights.bin").write_bytes(bytes(range(256)) * 64)
        with sessionmaker_for(db_url)() as s:
            tenant = verify(s, auth["Authorization"].split()[1]).tenant_id
            for f in store_for(s3_settings).publish_dir(f"jobs/{job_id}", out):
                s.add(Artifact(tenant_id=tenant, job_id=job_id, name=f.name, location=f.location, size=f.size, sha256=f.sha256))
            s.commit()
        assert client.get(f"/v1/jobs/{job_id}/report", headers=auth).json() == {"method": "wanda"}
        art = next(a for a in client.get(f"/v1/jobs/{job_id}/artifacts", headers=auth).json()["data"] if a["name"] == "weights.bin")
        r = client.get(f"/v1/artifacts/{art['id']}/content", headers=auth, follow_redirects=False)
        assert r.status_code == 307 and r.headers["etag"] == f'"{art["sha256"]}"'
        part = httpx.get(r.headers["location"], headers={"Range": "bytes=256-511"})
        assert part.status_code == 206 and part.content == bytes(range(256))
