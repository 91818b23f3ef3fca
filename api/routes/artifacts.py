"""Artifact listing and download: streamed in constant memory, strong ETag (the sha256),
single byte ranges (206), If-Range, If-None-Match."""

from __future__ import annotations

import calendar
import re
import tarfile
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Header
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import select

from db.artifacts import store_for
from db.models import Artifact

from .. import wire
from ..deps import Principal, require, session, settings
from ..problems import Problem
from ..schemas import DownloadLink, Page
from .jobs import load_job

router = APIRouter(tags=["artifacts"])
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
TAR_BLOCK = tarfile.BLOCKSIZE


def _out(a: Artifact) -> dict:
    """schemas.ArtifactOut"""
    return {"id": a.id, "object": "artifact", "name": a.name, "size": a.size, "sha256": a.sha256,
            "created_at": wire.ts(a.created_at)}


@router.get("/v1/jobs/{job_id}/artifacts", response_model=Page)
def list_artifacts(job_id: str, s=Depends(session), p: Principal = Depends(require("jobs:read"))):
    job = load_job(s, p, job_id)
    rows = list(s.scalars(select(Artifact).where(Artifact.job_id == job.id).order_by(Artifact.name)))
    return wire.JSON(wire.page([_out(a) for a in rows], False))


@router.get("/v1/jobs/{job_id}/artifacts/archive",
            responses={200: {"content": {"application/x-tar": {}},
                             "description": "every artifact of the job in one uncompressed tar (POSIX pax), each "
                                            "entry carrying its sha256 as the pax header TOPIARY.sha256"}})
def archive(job_id: str, s=Depends(session), cfg=Depends(settings),
            p: Principal = Depends(require("jobs:read", links=True))):
    """The whole result as one tar, streamed file by file from the store: memory stays constant
    whatever the model's size, and Content-Length is exact (headers are computed up front)."""
    job = load_job(s, p, job_id)
    rows = list(s.scalars(select(Artifact).where(Artifact.job_id == job.id).order_by(Artifact.name)))
    if not rows:
        raise Problem(409, "no-artifacts", "No artifacts", f"job {job.id} is {job.status}; only a succeeded job has files")
    entries = [(tar_header(a.name, a.size, a.sha256, calendar.timegm(a.created_at.utctimetuple())), a.location, a.size) for a in rows]
    store = store_for(cfg)

    def body():
        for header, location, size in entries:
            yield header
            if size:
                yield from store.read_range(location, 0, size - 1)
            yield b"\0" * (-size % TAR_BLOCK)
        yield b"\0" * (2 * TAR_BLOCK)  # end of archive

    length = sum(len(h) + size + (-size % TAR_BLOCK) for h, _, size in entries) + 2 * TAR_BLOCK
    return StreamingResponse(body(), media_type="application/x-tar", headers={
        "Content-Length": str(length), "Content-Disposition": f'attachment; filename="{job.id}.tar"'})


def tar_header(name: str, size: int, sha256: str, mtime: int) -> bytes:
    """One pax tar header block sequence for a regular file (long names go in the pax header)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, mtime
    info.pax_headers = {"TOPIARY.sha256": sha256}
    return info.tobuf(tarfile.PAX_FORMAT)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """One range 'bytes=a-b' | 'bytes=a-' | 'bytes=-n' -> (start, end) inclusive; None if absent
    or not satisfiable (the caller answers 416 when a header was given)."""
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        n = int(last)
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start, end = int(first), int(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


@router.get("/v1/artifacts/{artifact_id}/content",
            responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "partial content"},
                       307: {"description": "redirect to a short-lived presigned URL (S3 storage)"}})
def download(artifact_id: str, s=Depends(session), cfg=Depends(settings),
             p: Principal = Depends(require("jobs:read", links=True)),
             range_: str | None = Header(None, alias="range", max_length=200),
             if_range: str | None = Header(None, max_length=200),
             if_none_match: str | None = Header(None, max_length=200)):
    art = s.scalar(select(Artifact).where(Artifact.id == artifact_id, Artifact.tenant_id == p.tenant_id))
    if art is None:
        raise Problem(404, "not-found", "Artifact not found", f"no artifact {artifact_id}")
    store = store_for(cfg)
    etag = f'"{art.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Repr-Digest": f"sha-256=:{_b64(art.sha256)}:",
               "Content-Disposition": f'attachment; filename="{art.name.rsplit("/", 1)[-1]}"'}
    if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    url = store.presigned_url(art.location)
    if url is not None:  # object storage serves the bytes (and ranges) itself, for a few minutes
        return RedirectResponse(url, status_code=307, headers={"ETag": etag, "Cache-Control": "no-store"})
    start, end, code = 0, art.size - 1, 200
    if range_ and (if_range is None or if_range.strip() == etag):
        span = _byte_range(range_, art.size)
        if span is None:
            raise Problem(416, "range-not-satisfiable", "Range not satisfiable", f"size is {art.size} bytes",
                          headers={"Content-Range": f"bytes */{art.size}"})
        (start, end), code = span, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{art.size}"
    headers["Content-Length"] = str(end - start + 1 if art.size else 0)
    body = store.read_range(art.location, start, end) if art.size else iter(())
    return StreamingResponse(body, status_code=code, media_type="application/octet-stream", headers=headers)


def _link(s, p: Principal, path: str) -> dict:
    import time

    from db import keys
    from db.models import ApiKey

    record = s.scalar(select(ApiKey).where(ApiKey.prefix == p.key_prefix))
    token, expires = keys.sign_link(record, path, time.time())
    return {"object": "download_link", "url": f"{path}?link={token}",
            "expires_at": wire.ts(datetime.fromtimestamp(expires, UTC))}


@router.post("/v1/artifacts/{artifact_id}/link", response_model=DownloadLink)
def artifact_link(artifact_id: str, s=Depends(session), p: Principal = Depends(require("jobs:read"))):
    """A URL that downloads the artifact without the Authorization header, valid for a few
    minutes and for this artifact only: what a browser (or curl -O) streams straight to disk."""
    if s.scalar(select(Artifact.id).where(Artifact.id == artifact_id, Artifact.tenant_id == p.tenant_id)) is None:
        raise Problem(404, "not-found", "Artifact not found", f"no artifact {artifact_id}")
    return wire.JSON(_link(s, p, f"/v1/artifacts/{artifact_id}/content"))


@router.post("/v1/jobs/{job_id}/artifacts/archive/link", response_model=DownloadLink)
def archive_link(job_id: str, s=Depends(session), p: Principal = Depends(require("jobs:read"))):
    """A download link (as for one artifact) for the job's whole archive."""
    job = load_job(s, p, job_id)
    return wire.JSON(_link(s, p, f"/v1/jobs/{job.id}/artifacts/archive"))


def _b64(hex_digest: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex_digest)).decode()
