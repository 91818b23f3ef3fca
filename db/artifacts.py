"""Artifact stores: where job outputs and uploaded datasets live. A local directory by default,
S3-compatible object storage when TOPIARY_S3_BUCKET is set (`store_for`).

Clients only see artifacts through their database rows, which the worker commits after every
file is stored, so a job's outputs appear all at once or not at all. The local store also renames
a staging directory into place, so the files themselves are never half-written either."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pruning_core.files import make_readable

WORK_AREAS = "resume"  # under the store root: one directory per job with pruned blocks kept for a retry


@dataclass(frozen=True)
class StoredFile:
    name: str  # path relative to the published directory, '/'-separated
    location: str  # store key
    size: int
    sha256: str


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, location: str) -> Path:
        path = (self.root / location).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artifact location escapes the store: {location}")
        return path

    def publish_dir(self, key: str, source: Path) -> list[StoredFile]:
        """Copy `source` (a directory) to `key` atomically; returns every file with size and sha256."""
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            make_readable(staging)
            files = [self._describe(key, staging, p) for p in sorted(staging.rglob("*")) if p.is_file()]
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return files

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int) -> StoredFile:
        """Write an upload to `key` in chunks, refusing it past `max_bytes` (nothing is kept then)."""
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    size += len(block)
                    if size > max_bytes:
                        raise OverflowError(f"upload exceeds {max_bytes} bytes")
                    digest.update(block)
                    out.write(block)
            os.replace(make_readable(Path(tmp)), final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return StoredFile(final.name, key, size, digest.hexdigest())

    def _describe(self, key: str, base: Path, path: Path) -> StoredFile:
        rel = path.relative_to(base).as_posix()
        return StoredFile(rel, f"{key}/{rel}", path.stat().st_size, sha256_file(path))

    def local_path(self, location: str) -> Path:
        return self._path(location)

    def read_range(self, location: str, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Bytes [start, end] inclusive, in chunks: constant memory whatever the file size."""
        with open(self._path(location), "rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                block = f.read(min(chunk, remaining))
                if not block:
                    break
                remaining -= len(block)
                yield block

    def delete_prefix(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def read_bytes(self, location: str) -> bytes:
        return self._path(location).read_bytes()

    def work_area(self, job_id: str) -> Path:
        """Where a job keeps its blocks between attempts: in the store's root, so a worker on
        another machine sharing this directory (a shared volume) can resume the job."""
        return self._path(f"{WORK_AREAS}/{job_id}")

    def work_areas(self) -> dict[Path, str]:
        root = self._path(WORK_AREAS)
        return {p: p.name for p in root.iterdir()} if root.is_dir() else {}

    def staging_dirs(self, key: str) -> dict[Path, str]:
        """Staging directories of publish_dir under `key` -> the name each was publishing (a job
        id under "jobs"). Only a publish cut short (the process killed) leaves one behind."""
        parent = self._path(key)
        if not parent.is_dir():
            return {}
        return {p: p.name[1:].split(".staging-")[0] for p in parent.iterdir()
                if p.name.startswith(".") and ".staging-" in p.name}

    def presigned_url(self, location: str, expires: int = 300) -> None:
        return None  # served by the API itself


def store_for(settings):
    """The configured artifact store."""
    if settings.s3_bucket:
        from .s3 import S3Store

        return S3Store(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region,
                       settings.home / "s3-cache")
    return LocalStore(settings.artifacts)
