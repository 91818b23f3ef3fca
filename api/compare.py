"""Jobs side by side (GET /v1/jobs/compare): for each job the settings that tell runs apart and
the numbers that decide between them, read from the stored spec and result alone (no report
file is opened, so comparing ten jobs costs one query)."""

from __future__ import annotations

from typing import Any

from db.models import Job
from db.resources import ts
from pruning_core.spec.gates import mean_accuracy

MAX_JOBS = 10


def _zero_shot(result: dict[str, Any]) -> dict[str, Any]:
    """Per task the harness's headline metric (acc_norm where reported), and the mean acc."""
    tasks = result.get("zero_shot") or {}
    out = {}
    for name, entry in tasks.items():
        metric = "acc_norm" if "acc_norm" in (entry.get("pruned") or {}) else "acc"
        out[name] = {"metric": metric, "dense": (entry.get("dense") or {}).get(metric),
                     "pruned": (entry.get("pruned") or {}).get(metric)}
    return {"tasks": out, "mean_acc": {"dense": mean_accuracy(tasks, "dense"), "pruned": mean_accuracy(tasks, "pruned")}}


def row(job: Job) -> dict[str, Any]:
    spec, result = job.spec, job.result or {}
    return {
        "id": job.id, "status": job.status, "model": job.model, "method": job.method,
        "sparsity": spec.get("sparsity"), "pattern": spec.get("pattern"), "sweep": spec.get("sweep"),
        "sparsity_profile": spec.get("sparsity_profile"), "options": spec.get("options"),
        "quantize": spec.get("quantize"), "calibration": {k: v for k, v in (spec.get("calibration") or {}).items()
                                                          if k != "location"},
        "dtype": spec.get("dtype"), "device": result.get("device") or spec.get("device"),
        "sparsity_achieved": result.get("sparsity_achieved"),
        "perplexity": {name: {"dense": r.get("dense"), "pruned": r.get("pruned"),
                              "ratio": r["pruned"] / r["dense"] if r.get("dense") and r.get("pruned") is not None else None}
                       for name, r in (result.get("perplexity") or {}).items()},
        "zero_shot": _zero_shot(result),
        "seconds_total": result.get("seconds_total"),
        "gates": result.get("gates"), "sweep_points": result.get("sweep"),
        "created_at": ts(job.created_at), "finished_at": ts(job.finished_at),
    }
