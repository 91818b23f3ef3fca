"""One settings object per process, read from TOPIARY_* environment variables, built lazily.

With nothing configured the service is embedded: a SQLite file, a local broker and artifacts
under $TOPIARY_HOME (default ~/.topiary). Setting TOPIARY_DATABASE_URL / TOPIARY_BROKER_URL
switches to PostgreSQL / Redis.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _home() -> Path:
    return Path(os.environ.get("TOPIARY_HOME", "~/.topiary")).expanduser()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOPIARY_", extra="ignore")

    home: Path = Field(default_factory=_home)
    database_url: str | None = None  # default: sqlite file under home
    broker_url: str | None = None  # default: kombu's filesystem transport under home
    artifacts_dir: Path | None = None  # default: home/artifacts
    s3_bucket: str | None = None  # set to store artifacts in S3-compatible storage instead
    s3_prefix: str = "topiary"
    s3_endpoint_url: str | None = None  # e.g. a MinIO or other S3-compatible endpoint
    s3_region: str = "us-east-1"  # credentials come from the usual AWS_* variables
    allowed_model_roots: list[Path] = Field(default_factory=list)  # local model dirs users may register
    max_body_bytes: int = 1_048_576  # JSON request bodies
    max_dataset_bytes: int = 64 * 1_048_576  # calibration text uploads
    task_queue: str = "gpu"
    lease_seconds: float = 60.0  # a worker silent this long is presumed lost
    max_attempts: int = 3  # attempts per job before it fails for good
    requeue_after_seconds: float = 60.0  # ring again for jobs queued this long (the broker may have lost them)
    reaper_interval_seconds: float = 10.0
    worker_device: str = "auto"  # what "auto" in a job means on this worker
    worker_metrics_port: int = 9101  # `topiary worker` serves Prometheus metrics here (0: off)
    worker_heartbeat_seconds: float = 10.0  # how often a worker refreshes its row in the registry
    worker_stale_seconds: float = 30.0  # a worker silent this long is not listed as live
    admit_unfit_jobs: bool = False  # queue jobs that no live worker can hold (for workers that come later)
    # delays before the 2nd, 3rd, ... webhook attempt (Svix-like, about a day); then it has failed
    webhook_retry_seconds: list[float] = Field(default_factory=lambda: [5, 300, 1800, 7200, 18000, 36000, 36000])
    webhook_timeout_seconds: float = 15.0  # a 2xx within this counts as delivered
    # webhook receivers may be public addresses only, plus these networks (CIDR, e.g. "10.1.0.0/16")
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    # the most a job may ask for, refused at submission (422): calibration tokens (nsamples x
    # seqlen) are held as every block's inputs, so they bound a job's memory and time
    max_calibration_tokens: int = 1 << 20
    enqueue: bool = True  # tests of the API alone switch this off

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'topiary.db'}"

    @property
    def broker(self) -> str:
        return self.broker_url or f"filesystem://{self.home / 'broker'}"

    @property
    def artifacts(self) -> Path:
        return self.artifacts_dir or self.home / "artifacts"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
