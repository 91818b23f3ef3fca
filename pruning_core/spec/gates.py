"""Quality gates: limits a finished job's report must meet before anyone ships its checkpoint.

Torch-free and database-free: the spec half is checked at submission (one SpecError per bad
field), the verdict half reads a report summary (and, for `max_regression`, the summary of the
job it is compared with) and says which gate failed and by how much. The worker decides the job's
outcome from the verdict; the API, the CLI and the dashboard only show it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError

KINDS = ("max_ppl_ratio", "max_ppl", "min_zero_shot_retained", "max_regression")
# what each gate compares, for messages: value <op> limit passes
_RULE = {"max_ppl_ratio": "<=", "max_ppl": "<=", "min_zero_shot_retained": ">=", "max_regression": "<="}


@dataclass(frozen=True)
class Gates:
    """Optional limits, every one off by default.

    max_ppl_ratio: pruned / dense perplexity, on every evaluated dataset (needs the dense run).
    max_ppl: pruned perplexity, on every evaluated dataset.
    min_zero_shot_retained: pruned / dense mean zero-shot accuracy (needs tasks and the dense run).
    max_regression: relative perplexity increase over the last succeeded job of the same schedule
      (0.02: at most 2% worse on any dataset both evaluated); a job with no such predecessor passes it.
    """

    max_ppl_ratio: float | None = None
    max_ppl: float | None = None
    min_zero_shot_retained: float | None = None
    max_regression: float | None = None

    def __post_init__(self) -> None:
        errors = []
        for kind, low, high in (("max_ppl_ratio", 1.0, math.inf), ("max_ppl", 1.0, math.inf),
                                ("min_zero_shot_retained", 0.0, 1.5), ("max_regression", 0.0, 100.0)):
            value = getattr(self, kind)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                errors.append(SpecError(f"gates.{kind}: must be a number, got {value!r}", f"gates.{kind}"))
            elif not low <= value <= high:
                span = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
                errors.append(SpecError(f"gates.{kind}: must be {span}, got {value!r}", f"gates.{kind}"))
            else:
                object.__setattr__(self, kind, float(value))
        if errors:
            raise SpecError.combine(errors)

    @classmethod
    def from_value(cls, raw: Any) -> Gates | None:
        """None/{} -> None (no gates); a mapping of gate names to limits -> Gates."""
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise SpecError("gates: must be an object of gate names to limits", "gates")
        unknown = [k for k in raw if k not in KINDS]
        if unknown:
            raise SpecError(f"gates.{unknown[0]}: unknown gate (known: {', '.join(KINDS)})", f"gates.{unknown[0]}")
        gates = cls(**{k: v for k, v in raw.items() if v is not None})
        return gates if gates.active else None

    @property
    def active(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in KINDS if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, float]:
        return self.active

    def check_evaluation(self, dense: bool, datasets: tuple[str, ...], tasks: tuple[str, ...]) -> None:
        """Refuse gates the job's evaluation could never measure, at submission rather than after
        an hour of pruning."""
        errors = []
        active = self.active
        if not datasets:
            errors += [SpecError(f"gates.{k}: needs a perplexity dataset in evaluation.datasets", f"gates.{k}")
                       for k in ("max_ppl_ratio", "max_ppl", "max_regression") if k in active]
        if not dense:
            errors += [SpecError(f"gates.{k}: compares with the dense model; set evaluation.dense to true",
                                 f"gates.{k}") for k in ("max_ppl_ratio", "min_zero_shot_retained") if k in active]
        if "min_zero_shot_retained" in active and not tasks:
            errors.append(SpecError("gates.min_zero_shot_retained: needs zero-shot tasks in evaluation.tasks",
                                    "gates.min_zero_shot_retained"))
        if errors:
            raise SpecError.combine(errors)


def mean_accuracy(zero_shot: Mapping[str, Any], which: str) -> float | None:
    """Mean `acc` over the tasks of a report's zero_shot section for "dense" or "pruned"."""
    values = [entry[which]["acc"] for entry in (zero_shot or {}).values() if (entry or {}).get(which)]
    return sum(values) / len(values) if values else None


def verdict(gates: Gates | None, summary: Mapping[str, Any],
            previous: Mapping[str, Any] | None = None, previous_id: str | None = None) -> dict | None:
    """Every gate checked against a job's summary ({perplexity, zero_shot}): None without gates,
    else {passed, checks: [{gate, dataset?, value, limit, passed, by, message}]}. `by` is how far
    past (positive) or inside (negative) the limit the value sits, in the gate's own unit."""
    if gates is None:
        return None
    checks: list[dict[str, Any]] = []
    ppl = summary.get("perplexity") or {}
    active = gates.active

    def check(kind: str, value: float | None, dataset: str | None = None, note: str = "") -> None:
        limit = active[kind]
        if value is None or not math.isfinite(value):
            # a measurement that came out NaN/inf (a diverged model) fails; a missing one cannot pass either
            ok, by = False, math.inf
        else:
            by = (value - limit) if _RULE[kind] == "<=" else (limit - value)
            ok = by <= 0
        where = f" on {dataset}" if dataset else ""
        shown = "n/a" if value is None else f"{value:.4g}"
        message = f"{kind}{where}: {shown} {'meets' if ok else 'breaks'} the limit {_RULE[kind]} {limit:g}{note}"
        checks.append({"gate": kind, "dataset": dataset, "value": value, "limit": limit, "passed": ok,
                       "by": None if by == math.inf else by, "message": message})

    for name, entry in ppl.items():
        pruned, dense = entry.get("pruned"), entry.get("dense")
        if "max_ppl" in active:
            check("max_ppl", pruned, name)
        if "max_ppl_ratio" in active:
            check("max_ppl_ratio", pruned / dense if pruned is not None and dense else None, name)
    if "min_zero_shot_retained" in active:
        dense_acc = mean_accuracy(summary.get("zero_shot"), "dense")
        pruned_acc = mean_accuracy(summary.get("zero_shot"), "pruned")
        check("min_zero_shot_retained", pruned_acc / dense_acc if dense_acc and pruned_acc is not None else None)
    if "max_regression" in active:
        before = (previous or {}).get("perplexity") or {}
        shared = [n for n in ppl if (before.get(n) or {}).get("pruned")]
        for name in shared:
            now, then = ppl[name].get("pruned"), before[name]["pruned"]
            check("max_regression", now / then - 1.0 if now is not None else None, name, f" (vs {previous_id})")
        if not shared:  # the first night of a schedule, or nothing measured in common: nothing to regress from
            checks.append({"gate": "max_regression", "dataset": None, "value": None, "limit": active["max_regression"],
                           "passed": True, "by": None, "skipped": True,
                           "message": "max_regression: no earlier succeeded job of this schedule to compare with"})
    return {"passed": all(c["passed"] for c in checks), "checks": checks,
            "compared_with": previous_id if "max_regression" in active else None}


def failures(result: Mapping[str, Any]) -> str:
    """One line naming each failed gate and by how much (the job's error message)."""
    return "; ".join(c["message"] for c in result["checks"] if not c["passed"])
