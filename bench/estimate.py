"""The cost model (pruning_core.spec.estimate) against measured runs: random LLaMA models of a few
shapes written to disk, each method pruned by the CLI in a fresh process (so the report's peak
resident memory is the job's own), and the estimate from config.json alone set beside what the
run measured: peak host memory and seconds.

    TOPIARY_DATA_DIR=../shared/data .venv/bin/python bench/estimate.py
    .venv/bin/python bench/estimate.py --shapes 1024x2816x8 --methods wanda,sparsegpt,alps

Prints a table and writes bench/results/estimate.json. The GPU rates are calibrated on
bench/results/gpu_model_llama7b.json (an H100); this script checks the CPU side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_json

from pruning_core.spec import JobSpec
from pruning_core.spec.estimate import estimate

CLI = [sys.executable, "-m", "topiary.cli"]


def make_model(hidden: int, inter: int, blocks: int, out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pruning_core import models

    tok = AutoTokenizer.from_pretrained(models.bundled_dir("smollm2-135m"))
    torch.manual_seed(0)
    heads = max(1, hidden // 64)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=inter, num_hidden_layers=blocks,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)


def recorded_rows() -> list[dict]:
    """The streamed runs bench/big_model.py recorded (bf16 LLaMA shapes, no evaluation), against
    the estimate for their shapes: the weight-dominated regime the fresh runs above do not reach."""
    from common import RESULTS

    rows = []
    for name in ("big_model.json", "big_model_sparsegpt.json"):
        path = RESULTS / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        sh = data["shape"]
        nsamples, seqlen = (int(x) for x in data["calibration"].split()[0].split("x"))
        for row in data["rows"]:
            if row["impl"] != "streamed":
                continue
            config = {"model_type": "llama", "hidden_size": sh["hidden"], "intermediate_size": sh["mlp"],
                      "num_hidden_layers": row["blocks"], "num_attention_heads": sh["heads"],
                      "num_key_value_heads": sh["kv_heads"], "vocab_size": 49152, "tie_word_embeddings": False,
                      "dtype": "bfloat16"}
            job = JobSpec.from_dict({"model": "recorded", "method": row["method"],
                                     "calibration": {"nsamples": nsamples, "seqlen": seqlen},
                                     "evaluation": {"datasets": []}, "device": "cpu"})
            needs = estimate(config, job, "cpu")
            measured = row["peak_rss_gb"] * (1 << 30)
            rows.append({"shape": f"{sh['hidden']}x{sh['mlp']}x{row['blocks']} bf16 ({name}, {data['code']})",
                         "method": row["method"], "params": needs.params, "host_measured": measured,
                         "host_estimated": needs.host_bytes, "host_ratio": needs.host_bytes / measured,
                         "seconds_measured": row["seconds"], "seconds_estimated": needs.seconds,
                         "seconds_ratio": needs.seconds / row["seconds"], "recorded": True})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="64x128x2,512x1536x4,1024x2816x8", help="hidden x intermediate x blocks,...")
    ap.add_argument("--methods", default="wanda,sparsegpt,alps")
    ap.add_argument("--nsamples", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--eval-limit", type=int, default=4)
    ap.add_argument("--out", default="estimate.json")
    ap.add_argument("--recorded-only", action="store_true", help="only re-estimate the recorded big_model runs")
    args = ap.parse_args()
    rows = []
    if args.recorded_only:
        args.shapes = ""
    with tempfile.TemporaryDirectory() as tmp:
        for shape in filter(None, args.shapes.split(",")):
            hidden, inter, blocks = (int(x) for x in shape.split("x"))
            model = Path(tmp) / shape
            make_model(hidden, inter, blocks, model)
            config = json.loads((model / "config.json").read_text())
            for method in args.methods.split(","):
                out = Path(tmp) / f"{shape}-{method}"
                cmd = ["prune", "--model", str(model), "--method", method, "--nsamples", str(args.nsamples),
                       "--seqlen", str(args.seqlen), "--eval", "wikitext2", "--eval-limit", str(args.eval_limit),
                       "--device", "cpu", "--quiet", "--out", str(out)]
                proc = subprocess.run([*CLI, *cmd], capture_output=True, text=True)
                assert proc.returncode == 0, proc.stderr
                report = json.loads((out / "report.json").read_text())
                job = JobSpec.from_dict({"model": str(model), "method": method,
                                         "calibration": {"nsamples": args.nsamples, "seqlen": args.seqlen},
                                         "evaluation": {"datasets": ["wikitext2"], "limit": args.eval_limit},
                                         "device": "cpu"})
                needs = estimate(config, job, "cpu")
                measured_host = report["peak_memory"]["host_bytes"]
                # the job's own time: what the estimate covers (the CLI's interpreter start is not in it)
                measured_seconds = report["seconds_total"]
                rows.append({"shape": shape, "method": method, "params": needs.params,
                             "host_measured": measured_host, "host_estimated": needs.host_bytes,
                             "host_ratio": needs.host_bytes / measured_host,
                             "seconds_measured": measured_seconds, "seconds_estimated": needs.seconds,
                             "seconds_ratio": needs.seconds / measured_seconds,
                             "timings": report["timings"]})
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "timings"}), flush=True)
    rows += recorded_rows()
    gib = 1 << 30
    print()
    print_table(["shape", "method", "params (M)", "host measured GiB", "host estimated GiB", "est/meas",
                 "seconds measured", "seconds estimated", "est/meas"],
                [[r["shape"], r["method"], f"{r['params'] / 1e6:.1f}", f"{r['host_measured'] / gib:.2f}",
                  f"{r['host_estimated'] / gib:.2f}", f"{r['host_ratio']:.2f}", f"{r['seconds_measured']:.1f}",
                  f"{r['seconds_estimated']:.1f}", f"{r['seconds_ratio']:.2f}"] for r in rows])
    worst_host = max(abs(r["host_ratio"] - 1) for r in rows)
    print(f"\nworst host-memory error {worst_host:.1%}; seconds ratio range "
          f"{min(r['seconds_ratio'] for r in rows):.2f}-{max(r['seconds_ratio'] for r in rows):.2f}")
    print(f"wrote {write_json(args.out, {'protocol': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
