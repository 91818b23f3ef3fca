"""Stored job spec (the API's normalized JSON) -> pruning_core objects. Imported in the child only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from db.artifacts import store_for
from db.paths import PathNotAllowed, allowed_model_dir
from db.settings import Settings


def to_pipeline_job(spec: dict[str, Any], settings: Settings, device: str):
    from pruning_core import CalibrationSpec, Pattern, PruneSpec
    from pruning_core.pipeline import EvalSpec, Job
    from pruning_core.quant import QuantSpec

    cal = spec["calibration"]
    source = cal["source"]
    if "location" in cal:  # an uploaded dataset: its file in the artifact store
        source = str(store_for(settings).local_path(cal["location"]))
    quant = spec.get("quantize")
    prune = PruneSpec(
        method=spec["method"],
        sparsity=spec["sparsity"],
        pattern=Pattern.parse(spec.get("pattern")),
        options=spec.get("options") or {},
        calibration=CalibrationSpec(source, cal["nsamples"], cal["seqlen"], cal["seed"]),
        quant=QuantSpec(quant["bits"], quant.get("group_size")) if quant else None,
    )
    ev = spec.get("evaluation") or {}
    evaluation = EvalSpec(tuple(ev.get("datasets", ["wikitext2"])), ev.get("seqlen"), ev.get("limit"),
                          tasks=tuple(ev.get("tasks") or ()), task_limit=ev.get("task_limit"))
    wanted = spec.get("device", "auto")
    return Job(model=model_to_open(spec["model_source"], settings), spec=prune, evaluation=evaluation,
               dtype=spec.get("dtype", "auto"), device=device if wanted == "auto" else wanted)


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


def parse_work_dir(path: Path) -> Optional[tuple[str, int]]:
    """(job id, attempt) of a work_dir path, or of the pipeline's siblings of it (".<name>.work-…",
    ".<name>.partial-…"); None for anything else found there."""
    job_id, _, attempt = path.name.lstrip(".").split(".", 1)[0].rpartition("-")
    return (job_id, int(attempt)) if job_id and attempt.isdigit() else None
