"""Stored job spec (the API's normalized JSON) -> pruning_core objects. Imported in the child only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from db.artifacts import store_for
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
    return Job(model=spec["model_source"]["source"], spec=prune, evaluation=evaluation,
               device=device if wanted == "auto" else wanted)


def work_dir(settings: Settings, job_id: str, attempt: int) -> Path:
    return settings.home / "work" / f"{job_id}-{attempt}"
