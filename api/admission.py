"""Estimates and admission: what a job will need (pruning_core.spec.estimate, from config.json
alone) on each class of live worker, and the refusal of a job that no live worker can hold.

With no live worker the job is admitted (nothing to judge against: workers may start later);
`admit_unfit_jobs` admits jobs no live worker fits, for workers that will come."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db import workers
from db.settings import Settings
from pruning_core.spec import JobSpec
from pruning_core.spec import estimate as cost

from .problems import Problem
from .service import model_config

GIB = 1 << 30


def _streamed(model_source: dict[str, str]) -> bool:
    """A safetensors directory (a registered one, the bundled model's cache) streams block by
    block; a GGUF file is loaded whole."""
    return Path(model_source["source"]).suffix != ".gguf"


def _job_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """The normalized spec as the job spec reads it: without where the API found the model and an
    uploaded dataset (model_source, calibration.location), which only the worker uses."""
    fields = {k: v for k, v in spec.items() if k != "model_source"}
    fields["calibration"] = {k: v for k, v in fields.get("calibration", {}).items() if k != "location"}
    return fields


def _device(job: JobSpec, worker_device: str) -> str | None:
    """Where `job` runs on a worker of `worker_device`; None when it cannot run there."""
    wanted = job.device.split(":")[0]
    if wanted == "auto":
        return "cuda" if worker_device == "cuda" else "cpu"
    if wanted == "cuda" and worker_device != "cuda":
        return None
    return wanted if wanted in ("cpu", "cuda") else None


def classes(s: Session, settings: Settings) -> list[dict[str, Any]]:
    """Live workers of this service's queue, grouped by what they run on."""
    groups: dict[tuple, dict[str, Any]] = {}
    for w in workers.live(s, settings.worker_stale_seconds):
        if w.queue != settings.task_queue:
            continue
        key = (w.device, w.gpu_name, w.gpu_memory_bytes, w.host_memory_bytes)
        group = groups.setdefault(key, {"device": w.device, "gpu_name": w.gpu_name,
                                        "gpu_memory_bytes": w.gpu_memory_bytes,
                                        "host_memory_bytes": w.host_memory_bytes, "workers": 0})
        group["workers"] += 1
    return list(groups.values())


def estimate(s: Session, settings: Settings, spec: dict[str, Any]) -> dict[str, Any]:
    """The estimate of a normalized job spec (api.service.normalized_spec)."""
    config = model_config(spec["model_source"])
    job = JobSpec.from_dict(_job_fields(spec))
    streamed = _streamed(spec["model_source"])
    by_device = {d: cost.estimate(config, job, d, streamed) for d in ("cpu", "cuda")} if config else {}
    if not by_device or by_device["cpu"] is None:
        raise Problem(422, "cannot-estimate", "Cannot estimate this model",
                      f"no config.json of a known model family is readable here for {spec['model']!r} "
                      "(bundled models and registered directories of LLaMA/Mistral/Qwen/Gemma/OLMo/OPT families are)",
                      errors=[{"field": "model", "message": "config.json not readable here or family not known"}])
    out = []
    for group in classes(s, settings):
        device = _device(job, group["device"])
        needs = by_device[device] if device else None
        row = {**group, "runs_on": device, "fits": False, "needs": None, "seconds": None}
        if needs is not None:
            low, high = cost.seconds_range(needs)
            row.update(fits=cost.fits(needs, group["host_memory_bytes"], group["gpu_memory_bytes"]),
                       needs=_needs(needs), seconds={"low": round(low, 1), "expected": round(needs.seconds, 1),
                                                     "high": round(high, 1)})
        out.append(row)
    return {"object": "job_estimate", "model": spec["model"], "params": by_device["cpu"].params, "streamed": streamed,
            "needs": {d: _needs(n) for d, n in by_device.items()}, "worker_classes": out,
            "admitted": not out or any(r["fits"] for r in out) or settings.admit_unfit_jobs}


def _needs(n: cost.Needs) -> dict[str, Any]:
    return {"host_memory_bytes": n.host_bytes, "gpu_memory_bytes": n.gpu_bytes, "disk_bytes": n.disk_bytes,
            "expected_seconds": round(n.seconds, 1)}


def admit(s: Session, settings: Settings, spec: dict[str, Any]) -> None:
    """Refuse (422) a job that no live worker can hold, saying what it needs and what the largest
    worker has. Models the estimate cannot size are admitted (the worker checks them)."""
    if settings.admit_unfit_jobs:
        return
    try:
        report = estimate(s, settings, spec)
    except Problem:
        return
    if report["admitted"]:
        return
    rows = report["worker_classes"]
    largest = max(rows, key=lambda r: (r["gpu_memory_bytes"] or 0, r["host_memory_bytes"]))
    need = next((r["needs"] for r in rows if r is largest and r["needs"]), None) or report["needs"]["cpu"]
    gpu = f", {need['gpu_memory_bytes'] / GIB:.1f} GiB of GPU memory" if need.get("gpu_memory_bytes") else ""
    has_gpu = f"{largest['gpu_name']} with {largest['gpu_memory_bytes'] / GIB:.1f} GiB, " if largest["gpu_memory_bytes"] else ""
    raise Problem(422, "no-worker-fits", "No live worker can run this job",
                  f"the job needs {need['host_memory_bytes'] / GIB:.1f} GiB of host memory{gpu}; the largest live worker "
                  f"has {has_gpu}{largest['host_memory_bytes'] / GIB:.1f} GiB of host memory ({largest['device']}). "
                  "Ask for fewer calibration tokens or another device, start a bigger worker, or have the operator "
                  "set TOPIARY_ADMIT_UNFIT_JOBS=true to queue it for workers that come later",
                  estimate=report)
