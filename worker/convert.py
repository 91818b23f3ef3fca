"""Stored job spec (the API's normalized JSON) -> pruning_core objects. Imported in the child only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from db.artifacts import store_for
from db.paths import PathNotAllowed, allowed_model_dir
from db.settings import Settings


def to_pipeline_job(spec: dict[str, Any], settings: Settings, device: str):
    """The stored spec -> pruning_core.spec.JobSpec, checked by the same code the API ran."""
    from pruning_core.spec import JobSpec

    body = {key: value for key, value in spec.items() if key != "model_source"}
    cal = dict(body.get("calibration") or {})
    location = cal.pop("location", None)
    if location:  # an uploaded dataset: its file in the artifact store
        cal["source"] = str(store_for(settings).local_path(location))
    body["calibration"] = cal
    body["model"] = model_to_open(spec["model_source"], settings)
    if body.get("device", "auto") == "auto":
        body["device"] = device
    return JobSpec.from_dict(body)


def model_to_open(source: dict[str, str], settings: Settings) -> str:
    """What the pipeline opens: a local directory checked against this worker's allowed roots
    now, and passed on resolved (the registered path may have become a symlink out of the
    root since the API checked it); bundled names and hub ids as they are."""
    if source["kind"] != "local":
        return source["source"]
    from pruning_core import errors

    try:
        return str(allowed_model_dir(source["source"], settings.allowed_model_roots))
    except PathNotAllowed as exc:
        raise errors.PathNotAllowed(f"model directory {source['source']}: {exc}") from None


def work_root(settings: Settings) -> Path:
    return settings.home / "work"


def work_dir(settings: Settings, job_id: str, attempt: int) -> Path:
    return work_root(settings) / f"{job_id}-{attempt}"


def parse_work_dir(path: Path) -> tuple[str, int] | None:
    """(job id, attempt) of a work_dir path, or of the pipeline's siblings of it (".<name>.work-…",
    ".<name>.partial-…"); None for anything else found there."""
    job_id, _, attempt = path.name.lstrip(".").split(".", 1)[0].rpartition("-")
    return (job_id, int(attempt)) if job_id and attempt.isdigit() else None
