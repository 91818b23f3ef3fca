"""S3-compatible artifact store (boto3). Keys live under `<prefix>/`; every upload is verified by
the service's own SHA-256, which is also what the API serves as the ETag."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .artifacts import StoredFile, sha256_file


class S3Store:
    def __init__(self, bucket: str, prefix: str, endpoint_url, region: str, cache_dir: Path):
        import boto3

        self.bucket, self.prefix, self.cache_dir = bucket, prefix.strip("/"), Path(cache_dir)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, location: str) -> str:
        if ".." in location.split("/"):
            raise ValueError(f"artifact location escapes the store: {location}")
        return f"{self.prefix}/{location}" if self.prefix else location

    def publish_dir(self, key: str, source: Path) -> list[StoredFile]:
        """Upload every file under `source` to `key/` (replacing an earlier attempt's objects)."""
        self.delete_prefix(key)
        files = []
        for path in sorted(Path(source).rglob("*")):
            if path.is_file():
                rel = path.relative_to(source).as_posix()
                location = f"{key}/{rel}"
                self.client.upload_file(str(path), self.bucket, self._key(location))
                files.append(StoredFile(rel, location, path.stat().st_size, sha256_file(path)))
        return files

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int) -> StoredFile:
        """Spool the upload to a temporary file (refused past max_bytes), then store it."""
        with tempfile.NamedTemporaryFile() as tmp:
            size = 0
            for block in iter(lambda: stream.read(1 << 20), b""):
                size += len(block)
                if size > max_bytes:
                    raise OverflowError(f"upload exceeds {max_bytes} bytes")
                tmp.write(block)
            tmp.flush()
            self.client.upload_file(tmp.name, self.bucket, self._key(key))
            return StoredFile(key.rsplit("/", 1)[-1], key, size, sha256_file(Path(tmp.name)))

    def read_range(self, location: str, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(location), Range=f"bytes={start}-{end}")["Body"]
        yield from body.iter_chunks(chunk)

    def read_bytes(self, location: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(location))["Body"].read()

    def local_path(self, location: str) -> Path:
        """A local copy (for workers reading an uploaded dataset), cached by location."""
        path = self.cache_dir / location
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            os.close(fd)
            self.client.download_file(self.bucket, self._key(location), tmp)
            os.replace(tmp, path)
        return path

    def delete_prefix(self, key: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(key).rstrip("/") + "/"):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects})

    def work_area(self, job_id: str) -> Path:
        """On this worker's disk (not in the bucket): a retry resumes only on the same machine."""
        return self.cache_dir / "resume" / job_id

    def work_areas(self) -> dict[Path, str]:
        root = self.cache_dir / "resume"
        return {p: p.name for p in root.iterdir()} if root.is_dir() else {}

    def staging_dirs(self, key: str) -> dict:
        """None to clean here: objects are uploaded in place, and a job that ends without committing its
        artifacts has its prefix deleted (worker.reaper)."""
        return {}

    def presigned_url(self, location: str, expires: int = 300) -> str:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self._key(location)},
                                                  ExpiresIn=expires)
