"""Zero-shot accuracy of pruned SmolLM2-135M under the fixed CPU protocol's calibration (64×512
C4, seed 0): the dense model and each method@setting, on every task of pruning_core.zeroshot
with the first --limit items per task, scored the lm-evaluation-harness way.

    TOPIARY_DATA_DIR=../shared/data .venv/bin/python bench/zero_shot.py
    .venv/bin/python bench/zero_shot.py --runs alps@0.5,sparsegpt@0.5 --limit 200 --out zero_shot_2.json

Prints a table (headline metric per task: acc_norm where the harness reports it, else acc) and
writes bench/results/zero_shot.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Protocol, print_table, timed, write_json

from pruning_core import Pattern, PruneSpec, prune_model
from pruning_core.spec import CalibrationSpec
from pruning_core.zeroshot import TASKS, zero_shot


def headline(result: dict) -> float:
    return result.get("acc_norm", result["acc"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="sparsegpt@0.5,alps@0.5,sparsegpt@2:4,alps@2:4", help="method@setting,...")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--limit", type=int, default=100, help="items per task")
    ap.add_argument("--out", default="zero_shot.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    proto = Protocol()
    tasks = args.tasks.split(",")
    rows = []

    def evaluate(label: str, setting: str, model, seconds: float) -> None:
        res, eval_seconds = timed(lambda: zero_shot(model, proto.tokenizer, tasks, "cpu", limit=args.limit))
        mean = sum(headline(r) for r in res.values()) / len(res)
        rows.append({"method": label, "setting": setting, "tasks": res, "mean": mean, "prune_seconds": seconds,
                     "eval_seconds": eval_seconds})
        print(f"{setting:>5} {label:<10} mean {mean:.4f} " + " ".join(f"{t}={headline(r):.3f}" for t, r in res.items()),
              flush=True)

    evaluate("dense", "-", proto.fresh_model(), 0.0)
    for run in args.runs.split(","):
        method, setting = run.split("@")
        pattern = Pattern.parse(setting if ":" in setting else None)
        spec = PruneSpec(method, sparsity=None if pattern.is_nm else float(setting), pattern=pattern,
                         calibration=CalibrationSpec("c4", proto.nsamples, proto.seqlen, proto.seed))
        model = proto.fresh_model()
        _, seconds = timed(partial(prune_model, model, proto.calib, spec, "cpu"))
        evaluate(method, setting, model, seconds)
    print()
    print_table(["setting", "method", *tasks, "mean"],
                [[r["setting"], r["method"], *(f"{headline(r['tasks'][t]):.3f}" for t in tasks), f"{r['mean']:.4f}"]
                 for r in rows])
    env = {**proto.describe(), "limit_per_task": args.limit, "metric": "acc_norm where reported, else acc"}
    print(f"\nwrote {write_json(args.out, {'env': env, 'rows': rows})}")


if __name__ == "__main__":
    main()
