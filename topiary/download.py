"""`topiary download`: fetch a job's whole result through the API as one tar
(GET /v1/jobs/{id}/artifacts/archive), check every file's sha256 against the job's artifact list
while unpacking, and publish the directory only when all of it arrived intact."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import httpx


class DownloadError(Exception):
    pass


class _Reader:
    """A read(n) view of a byte iterator, for tarfile's streaming mode (nothing is held but one chunk)."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.buffer = chunks, b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buffer) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        out, self.buffer = (self.buffer, b"") if n < 0 else (self.buffer[:n], self.buffer[n:])
        return out


def _safe_target(root: Path, name: str) -> Path:
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise DownloadError(f"refusing archive entry {name!r}")
    return root.joinpath(*parts)


def download(client: httpx.Client, job_id: str, out: Path) -> list[tuple[str, int]]:
    """Unpack job `job_id`'s artifacts into `out` (new or empty); returns [(name, size)]."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DownloadError(f"{out} exists and is not an empty directory")
    listing = client.get(f"/v1/jobs/{job_id}/artifacts")
    if listing.status_code != 200:
        raise DownloadError(_problem(listing))
    expected = {a["name"]: a["sha256"] for a in listing.json()["data"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.download-", dir=out.parent))
    got: list[tuple[str, int]] = []
    try:
        with client.stream("GET", f"/v1/jobs/{job_id}/artifacts/archive") as r:
            if r.status_code != 200:
                r.read()
                raise DownloadError(_problem(r))
            with tarfile.open(fileobj=_Reader(r.iter_bytes()), mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        raise DownloadError(f"unexpected archive entry {member.name!r}")
                    target = _safe_target(staging, member.name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    digest = hashlib.sha256()
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            digest.update(block)
                            dst.write(block)
                    want = expected.get(member.name)
                    if want is None or digest.hexdigest() != want:
                        raise DownloadError(f"{member.name}: sha256 {digest.hexdigest()} does not match the job's "
                                            f"artifact list ({want})")
                    got.append((member.name, member.size))
        missing = sorted(set(expected) - {name for name, _ in got})
        if missing:
            raise DownloadError(f"the archive lacks {', '.join(missing)}")
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return got


def _publish(staging: Path, out: Path) -> None:
    from pruning_core.files import make_readable

    make_readable(staging)
    if out.exists():
        out.rmdir()
    os.replace(staging, out)


def _problem(r: httpx.Response) -> str:
    try:
        body = r.json()
        return f"{r.status_code} {body.get('title', '')}: {body.get('detail', '')}".strip()
    except ValueError:
        return f"HTTP {r.status_code}"
