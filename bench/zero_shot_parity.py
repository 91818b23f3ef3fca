"""Zero-shot parity with lm-evaluation-harness: our scorer (pruning_core.zeroshot) and lm-eval's
own task definitions with its HF model wrapper, on the same in-memory SmolLM2-135M, dense and
2:4-pruned (SparseGPT, the fixed CPU protocol's calibration), on the first --limit items of each
task. Item for item: which choice each picks (acc and acc_norm) and the per-choice log-likelihoods.

    .venv/bin/pip install -e ".[bench]"        # lm_eval
    TOPIARY_DATA_DIR=../shared/data .venv/bin/python bench/zero_shot_parity.py

lm-eval reads its registered task YAML unchanged except where the data comes from: the local
files in <data dir>/tasks/ are rewritten into the schema of the hub dataset the task names (the
same fields the hub's builder produces) and handed to it as `json` data files, so its prompts,
its process_docs and its metrics are its own. Offline: nothing is fetched.

Prints a table and writes bench/results/zero_shot_parity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Protocol, print_table, timed, write_json

from pruning_core import Pattern, PruneSpec, prune_model
from pruning_core.spec import CalibrationSpec
from pruning_core.zeroshot import TASKS, choose, load_items, score_items, task_file


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def arc_docs(path: Path) -> list[dict]:
    """allenai/ai2_arc's fields from the original AI2 JSONL."""
    return [{"id": d["id"], "question": d["question"]["stem"], "answerKey": d["answerKey"],
             "choices": {"text": [c["text"] for c in d["question"]["choices"]],
                         "label": [c["label"] for c in d["question"]["choices"]]}} for d in _jsonl(path)]


def piqa_docs(path: Path) -> list[dict]:
    labels = [int(x) for x in path.with_name("valid-labels.lst").read_text().split()]
    return [{"goal": d["goal"], "sol1": d["sol1"], "sol2": d["sol2"], "label": g}
            for d, g in zip(_jsonl(path), labels, strict=True)]


def hellaswag_docs(path: Path) -> list[dict]:
    """Rowan/hellaswag's fields from llama.cpp's text form, whose context line is the harness's
    `activity_label: ctx_a ctx_b` already joined: split back at the first ": " (ctx_b empty, so
    lm-eval's own process_docs rebuilds the same query)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    docs = []
    for i in range(0, len(lines) - 5, 6):
        label, _, ctx = lines[i].partition(": ")
        docs.append({"activity_label": label, "ctx_a": ctx, "ctx_b": "", "endings": lines[i + 2 : i + 6],
                     "label": lines[i + 1]})
    return docs


# task -> (rewriter, the split lm-eval scores)
LOCAL = {"arc_easy": (arc_docs, "test"), "piqa": (piqa_docs, "validation"), "hellaswag": (hellaswag_docs, "validation")}


def lm_eval_configs(tasks: list[str], folder: Path) -> list[dict]:
    """lm-eval's registered config for each task, pointed at a local JSONL rewrite of our file."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    manager = TaskManager()
    configs = []
    for name in tasks:
        rewrite, split = LOCAL[name]
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in rewrite(task_file(name))))
        cfg = load_yaml(manager.task_index[name].yaml_path, resolve_func=True)
        cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": {split: str(path)}},
                   training_split=None, validation_split=split if split == "validation" else None,
                   test_split=split if split == "test" else None, fewshot_split=None)
        cfg.pop("tag", None)
        configs.append(cfg)
    return configs


def run_lm_eval(model, tokenizer, configs: list[dict], limit: int, batch_size: int) -> dict[str, list[dict]]:
    """Per task, lm-eval's samples in document order: choice log-likelihoods, acc, acc_norm."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu")
    out = lm_eval.simple_evaluate(model=lm, tasks=configs, num_fewshot=0, limit=limit, log_samples=True,
                                  bootstrap_iters=0)
    samples = {}
    for name, rows in out["samples"].items():
        rows = sorted(rows, key=lambda r: r["doc_id"])
        samples[name] = [{"ll": [float(r[0]) for r in row["filtered_resps"]], "acc": bool(row["acc"]),
                          "acc_norm": bool(row["acc_norm"])} for row in rows]
    return samples


def compare(name: str, ours: list[dict], theirs: list[dict]) -> dict:
    """Accuracy of both and every item where they pick differently, with the log-likelihood gap."""
    assert len(ours) == len(theirs), (name, len(ours), len(theirs))
    row = {"task": name, "items": len(ours), "differing_items": []}
    for metric in ("acc", "acc_norm"):
        row[f"ours_{metric}"] = sum(o[metric] for o in ours) / len(ours)
        row[f"lm_eval_{metric}"] = sum(t[metric] for t in theirs) / len(theirs)
        row[f"{metric}_points"] = 100 * (row[f"ours_{metric}"] - row[f"lm_eval_{metric}"])
    gaps = [max(abs(a - b) for a, b in zip(o["ll"], t["ll"], strict=True)) for o, t in zip(ours, theirs)]
    row["max_ll_abs_diff"] = max(gaps)
    for i, (o, t) in enumerate(zip(ours, theirs)):
        if o["acc"] != t["acc"] or o["acc_norm"] != t["acc_norm"]:
            top = sorted(o["ll"], reverse=True)
            margin = top[0] - top[1]
            row["differing_items"].append({"doc": i, "ours": o, "lm_eval": t, "ll_abs_diff": gaps[i],
                                           "our_top2_margin": margin})
    return row


def ours(model, tokenizer, name: str, limit: int, batch_size: int) -> list[dict]:
    items = load_items(name, limit=limit)
    scores = score_items(model, tokenizer, items, "cpu", batch_size)
    return [{"ll": [s for s, _ in sc], **{k: bool(v) for k, v in choose(name, it, sc).items() if k.startswith("acc")}}
            for it, sc in zip(items, scores)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(LOCAL))
    ap.add_argument("--limit", type=int, default=200, help="first items per task")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--nsamples", type=int, default=64, help="calibration windows for the 2:4 model")
    ap.add_argument("--out", default="zero_shot_parity.json")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    assert all(TASKS[t].norm for t in tasks), "parity is checked on tasks with acc and acc_norm"
    proto = Protocol(nsamples=args.nsamples)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        configs = lm_eval_configs(tasks, Path(tmp))
        for label in ("dense", "sparsegpt 2:4"):
            model = proto.fresh_model()
            if label != "dense":
                spec = PruneSpec("sparsegpt", pattern=Pattern.parse("2:4"),
                                 calibration=CalibrationSpec("c4", proto.nsamples, proto.seqlen, proto.seed))
                prune_model(model, proto.calib, spec, "cpu")
            theirs, lm_seconds = timed(lambda m=model: run_lm_eval(m, proto.tokenizer, configs, args.limit, args.batch_size))
            for name in tasks:
                mine, seconds = timed(lambda m=model, t=name: ours(m, proto.tokenizer, t, args.limit, args.batch_size))
                rows.append({"model": label, **compare(name, mine, theirs[name]), "ours_seconds": seconds})
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "differing_items"}), flush=True)
            rows[-1]["lm_eval_seconds_all_tasks"] = lm_seconds
    print()
    print_table(["model", "task", "items", "acc ours", "acc lm-eval", "acc_norm ours", "acc_norm lm-eval",
                 "max |Δ log-lik|", "items picked differently"],
                [[r["model"], r["task"], r["items"], f"{r['ours_acc']:.3f}", f"{r['lm_eval_acc']:.3f}",
                  f"{r['ours_acc_norm']:.3f}", f"{r['lm_eval_acc_norm']:.3f}", f"{r['max_ll_abs_diff']:.1e}",
                  len(r["differing_items"])] for r in rows])
    import lm_eval

    env = {**proto.describe(), "limit_per_task": args.limit, "lm_eval": lm_eval.__version__,
           "pruned": "sparsegpt 2:4, calibration as the protocol"}
    print(f"\nwrote {write_json(args.out, {'env': env, 'rows': rows})}")


if __name__ == "__main__":
    main()
