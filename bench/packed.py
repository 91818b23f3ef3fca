"""What a jointly quantized job stores: the packed (compressed-tensors) checkpoint of the bundled
model against its dense source and against bf16, and the perplexity transformers gets from the
packed checkpoint against the job's own (in-memory) figure.

    .venv/bin/python bench/packed.py          # pgz 2:4 int4 per channel, sparsegpt 2:4 int4 groups of 64

Prints a table and writes bench/results/packed.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, timed, write_json

from pruning_core import data, models, pipeline
from pruning_core.evaluate import perplexity
from pruning_core.spec import JobSpec

RUNS = {"pgz-int4": ("pgz", {"bits": 4}), "sparsegpt-int4-g64": ("sparsegpt", {"bits": 4, "group_size": 64})}


def dir_bytes(path: Path, pattern: str = "*.safetensors") -> int:
    return sum(p.stat().st_size for p in path.glob(pattern))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--nsamples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--out", default="packed.json")
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = models.bundled_dir("smollm2-135m")
    rows = []
    for name in args.runs.split(","):
        method, quant = RUNS[name]
        job = JobSpec.from_dict({"model": "smollm2-135m", "method": method, "pattern": "2:4", "quantize": quant,
                                 "calibration": {"source": "c4", "nsamples": args.nsamples, "seqlen": args.seqlen},
                                 "evaluation": {"datasets": ["wikitext2"], "limit": args.windows, "dense": False},
                                 "device": "cpu"})
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            report, seconds = timed(partial(pipeline.run, job, out))
            stored = report["quantization"]["checkpoint"]
            loaded = AutoModelForCausalLM.from_pretrained(out / "model")  # decompressed on its first forward
            tok = AutoTokenizer.from_pretrained(out / "model")
            ids = tok(data.eval_text("wikitext2"), return_tensors="pt").input_ids[0]
            reloaded, _ = perplexity(loaded, ids, args.seqlen, args.windows)
            ours = report["perplexity"]["wikitext2"]["pruned"]
            rows.append({"run": name, "method": method, "quantize": quant, "seconds": seconds,
                         "source_bytes": dir_bytes(source), "checkpoint_bytes": dir_bytes(out / "model"),
                         "quantized_bytes": stored["quantized_bytes"], "quantized_bf16_bytes": stored["quantized_bf16_bytes"],
                         "quantized_ratio_to_bf16": stored["ratio_to_bf16"], "quantized_layers": stored["quantized_layers"],
                         "ppl_in_memory": ours, "ppl_packed_reloaded": reloaded, "ppl_rel_diff": abs(reloaded - ours) / ours})
        print(rows[-1], flush=True)
    print_table(["run", "source bytes (fp32)", "checkpoint bytes", "quantized layers / bf16", "ppl job", "ppl packed, transformers",
                 "rel. diff"],
                [[r["run"], r["source_bytes"], r["checkpoint_bytes"], f"{r['quantized_ratio_to_bf16']:.3f}",
                  f"{r['ppl_in_memory']:.4f}", f"{r['ppl_packed_reloaded']:.4f}", f"{r['ppl_rel_diff']:.1e}"] for r in rows])
    print(f"\nwrote {write_json(args.out, {'protocol': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
