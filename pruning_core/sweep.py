"""A sweep: one job pruned at several settings (sparsities, N:M patterns), one checkpoint per point.

Each point is a whole pipeline run (pipeline.run) on a freshly opened model, published under
`points/<setting>/`; the dense evaluation runs once and is shared. Calibration statistics are not
shared: the layer-wise protocol feeds each block the outputs of the blocks already pruned at that
point's own sparsity, so no two points see the same block inputs. The sweep's `report.json`
holds the curve: every point's achieved sparsity, perplexities and zero-shot accuracies.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import export, pipeline
from .driver import Progress
from .files import make_readable
from .spec import JobSpec
from .spec.gates import mean_accuracy


def point_dir(label: str) -> str:
    """Where a point's output lives inside the sweep's output ("2:4" is not a portable name)."""
    return f"points/{label.replace(':', '-of-')}"


def run(job: JobSpec, out_dir: str | Path, progress: Callable[[Progress], None] | None = None,
        data_root: Path | None = None, allow_download: bool = False,
        resume_dir: Path | None = None) -> dict[str, Any]:
    """Run every point of `job.sweep` in order; returns the sweep's report (also in report.json)."""
    out = Path(out_dir)
    export.check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    notify = progress or (lambda p: None)
    points = job.points()
    cache: dict = {}
    reports = []
    for i, (label, point) in enumerate(points):
        where = f"{i + 1} of {len(points)} ({label})"

        def counted(p: Progress, i=i, where=where) -> None:
            # layer counts run over the whole sweep, so percent and ETA cover every point
            total = p.layers_total * len(points)
            notify(dataclasses.replace(p, layers_done=p.layers_done + i * p.layers_total, layers_total=total, point=where))

        reports.append((label, pipeline.run(point, out / point_dir(label), counted, data_root, allow_download,
                                            resume_dir=Path(resume_dir) / point_dir(label) if resume_dir else None,
                                            dense_cache=cache)))
    report = summary(job, reports)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2))
    make_readable(path)
    return report


def summary(job: JobSpec, reports: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The curve: one entry per point, in the order given."""
    first = reports[0][1]
    return {
        "model": job.model, "method": job.spec.method, "sweep": [label for label, _ in reports],
        "points": [{"setting": label, "path": point_dir(label), "sparsity_target": r["sparsity_target"],
                    "sparsity_achieved": r["sparsity_achieved"], "pattern": r["pattern"],
                    "perplexity": r["perplexity"], "zero_shot": r["zero_shot"],
                    "zero_shot_mean": {"dense": mean_accuracy(r["zero_shot"], "dense"),
                                       "pruned": mean_accuracy(r["zero_shot"], "pruned")},
                    "seconds_total": r["seconds_total"], "quantization": r.get("quantization")}
                   for label, r in reports],
        "seconds_total": sum(r["seconds_total"] for _, r in reports),
        "peak_memory": reports[-1][1].get("peak_memory"),  # the process's high-water mark, over every point
        "device": first["device"], "dtype": first["dtype"], "options": first["options"],
        "calibration": first["calibration"], "versions": first["versions"],
    }
