"""Big models on one worker: peak host memory (RSS) and wall time of pruning a randomly
initialised LLaMA-architecture model stored in bf16 shards, side by side in one run:

* `streamed`: this code's pipeline (the model directory opened lazily, blocks read and written
  one at a time, dtype "auto" = bf16), at two depths of the same width;
* `in-memory`: the previous commit's pipeline (`--before DIR`, a worktree of it), which loads the
  whole model in float32 first;
* `llm-compressor`: `oneshot(pipeline="sequential")` on the same directory and calibration
  tensors (when llmcompressor is installed: `make bench-setup`).

    .venv/bin/python bench/big_model.py --before /tmp/before                 # hidden 2560, MLP 6912, 16 and 32 blocks
    .venv/bin/python bench/big_model.py --hidden 512 --mlp 1376 --blocks 2 4 --methods wanda   # a smoke run

Every run is its own process, which reports its own peak RSS (VmHWM of /proc/self/status, the
high-water mark of its address space since exec). Not wait4's ru_maxrss: Linux carries the
pre-exec high-water mark into it, so a child forked from this parent after it wrote the models
(about 3 GiB) would report at least the parent's size whatever it used itself.
The model's quality means nothing (random weights); its memory and time are real. Writes
bench/results/big_model.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import print_table, write_json


def make_model(directory: Path, hidden: int, mlp: int, blocks: int, heads: int, kv_heads: int) -> int:
    """Write a random bf16 LLaMA of this shape block by block (never whole in memory), with the
    bundled model's tokenizer beside it. Returns the parameter count."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pruning_core import models
    from pruning_core.shards import ShardWriter

    tokenizer = AutoTokenizer.from_pretrained(models.bundled_dir("smollm2-135m"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=blocks,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=4096,
                         tie_word_embeddings=False)
    with init_empty_weights():
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    generator = torch.Generator().manual_seed(0)

    def filled(module):
        for name, param in list(module.named_parameters(recurse=False)):
            value = torch.randn(param.shape, generator=generator) * 0.02 if param.dim() > 1 else torch.ones(param.shape)
            module._parameters[name] = torch.nn.Parameter(value.to(torch.bfloat16), requires_grad=False)

    def to_meta(module):
        for name, param in list(module.named_parameters(recurse=False)):
            module._parameters[name] = torch.nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=False)

    sink = ShardWriter(directory, blocks)
    count = 0
    for index, block in enumerate(model.model.layers):
        block.apply(filled)
        count += sum(p.numel() for p in block.parameters())
        sink.write_block(f"model.layers.{index}", block)
        block.apply(to_meta)
    for module in (model.model.embed_tokens, model.model.norm, model.lm_head):
        module.apply(filled)
        count += sum(p.numel() for p in module.parameters())
    sink.write_outside(model, "model.layers")
    sink.finish(model, tokenizer)
    return count


def calibration(directory: Path, nsamples: int, seqlen: int):
    from transformers import AutoTokenizer

    from pruning_core import data

    tokenizer = AutoTokenizer.from_pretrained(directory)
    return data.calibration_ids("c4", lambda t: tokenizer(t).input_ids, nsamples, seqlen, 0)  # [nsamples, seqlen]


def child(args) -> None:
    """One measured run, in its own process: prints {"seconds": ...} as its last line."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    calib = calibration(Path(args.model), args.nsamples, args.seqlen)
    t0 = time.perf_counter()
    if args.impl in ("streamed", "in-memory"):
        from pruning_core import CalibrationSpec, PruneSpec, pipeline

        spec = PruneSpec(method=args.method, sparsity=0.5, calibration=CalibrationSpec("c4", args.nsamples, args.seqlen, 0))
        make = getattr(pipeline, "JobSpec", None) or pipeline.Job  # the previous commit names it Job
        job = make(model=args.model, spec=spec, device="cpu", evaluation=pipeline.EvalSpec(datasets=()))
        pipeline.run(job, args.out)
    else:
        from datasets import Dataset
        from llmcompressor import oneshot
        from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
        from transformers import AutoModelForCausalLM

        cls = {"sparsegpt": SparseGPTModifier, "wanda": WandaPruningModifier}[args.method]
        ids = calib.tolist()
        dataset = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(r) for r in ids]})
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
        oneshot(model=model, dataset=dataset, recipe=cls(sparsity=0.5, ignore=["re:.*lm_head"]), pipeline="sequential",
                num_calibration_samples=len(ids), max_seq_length=args.seqlen, shuffle_calibration_samples=False)
        model.save_pretrained(args.out)
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_gb": _high_water_gib()}))


def _high_water_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20  # kB -> GiB
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(impl: str, method: str, model: Path, out: Path, args, pythonpath: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, "--method", method, "--model", str(model), "--out", str(out),
           "--nsamples", str(args.nsamples), "--seqlen", str(args.seqlen)]
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} {method} failed ({proc.returncode}):\n{proc.stdout[-2000:]}")
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"impl": impl, "method": method, "peak_rss_gb": measured["peak_rss_gb"], "seconds": measured["seconds"],
            "wall": time.perf_counter() - started}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=2560)
    ap.add_argument("--mlp", type=int, default=6912)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=32)
    ap.add_argument("--blocks", type=int, nargs=2, default=(16, 32), help="two depths of the same width")
    ap.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt"])
    ap.add_argument("--nsamples", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--before", type=Path, help="a worktree of the previous commit: its in-memory path is measured")
    ap.add_argument("--no-llmcompressor", action="store_true")
    ap.add_argument("--no-deep-before", action="store_true", help="skip the in-memory run (its float32 copy is 4x the model)")
    ap.add_argument("--workdir", type=Path, default=None, help="where outputs are written (default: a temp dir)")
    ap.add_argument("--models", type=Path, default=None,
                    help="keep the generated models here and reuse them on the next run (default: in the temp dir)")
    ap.add_argument("--out", default="big_model.json")
    ap.add_argument("--child", choices=["streamed", "in-memory", "llm-compressor"], help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.impl = args.child
        return child(args)
    ours = HERE.parent
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="big-model-") as tmp:
        tmp = Path(tmp)
        shallow, deep = args.blocks
        sizes, rows = {}, []
        models = args.models or tmp
        for blocks in (shallow, deep):
            t = time.perf_counter()
            where = models / f"llama-{args.hidden}x{args.mlp}-{blocks}"
            if (where / "params.json").is_file():
                sizes[blocks] = json.loads((where / "params.json").read_text())
            else:
                subprocess.run(["rm", "-rf", str(where)], check=False)
                sizes[blocks] = make_model(where, args.hidden, args.mlp, blocks, args.heads, args.kv_heads)
                (where / "params.json").write_text(json.dumps(sizes[blocks]))
            print(f"{blocks} blocks ({sizes[blocks] / 1e9:.2f}B parameters) ready in {time.perf_counter() - t:.0f}s", flush=True)
        try:
            import llmcompressor  # noqa: F401
            have_llmc = not args.no_llmcompressor
        except ImportError:
            have_llmc = False
        for method in args.methods:
            plan = [("streamed", shallow, ours), ("streamed", deep, ours)]
            if args.before and not args.no_deep_before:
                plan.append(("in-memory", deep, args.before))
            if have_llmc:
                plan.append(("llm-compressor", deep, ours))
            for impl, blocks, code in plan:
                out = tmp / f"out-{impl}-{method}-{blocks}"
                model = models / f"llama-{args.hidden}x{args.mlp}-{blocks}"
                row = {**measure(impl, method, model, out, args, code), "blocks": blocks,
                       "params": sizes[blocks], "bf16_gb": sizes[blocks] * 2 / 2**30}
                rows.append(row)
                print(f"{impl:<15} {method:<10} {blocks:>3} blocks  peak RSS {row['peak_rss_gb']:6.2f} GiB  "
                      f"{row['seconds']:7.1f} s", flush=True)
                save(args, shallow, deep, rows)  # after every run: an interrupted bench keeps what it measured
                subprocess.run(["rm", "-rf", str(out)], check=False)
    table = []
    for r in rows:
        same = {x["impl"]: x for x in rows if x["method"] == r["method"] and x["blocks"] == deep}
        table.append([r["impl"], r["method"], r["blocks"], f"{r['bf16_gb']:.2f}", f"{r['peak_rss_gb']:.2f}",
                      f"{r['peak_rss_gb'] / r['bf16_gb']:.2f}",
                      f"{r['peak_rss_gb'] / same['llm-compressor']['peak_rss_gb']:.2f}"
                      if "llm-compressor" in same and r["blocks"] == deep else "",
                      f"{r['seconds']:.0f}",
                      f"{r['seconds'] / same['in-memory']['seconds']:.2f}" if "in-memory" in same and r["blocks"] == deep else ""])
    print()
    print_table(["impl", "method", "blocks", "model bf16 GiB", "peak RSS GiB", "RSS / model", "RSS / llmc", "seconds",
                 "time / in-memory"], table)
    print(save(args, shallow, deep, rows))


def save(args, shallow: int, deep: int, rows: list[dict]) -> Path:
    return write_json(args.out, {"shape": {"hidden": args.hidden, "mlp": args.mlp, "heads": args.heads,
                                           "kv_heads": args.kv_heads, "blocks": [shallow, deep]},
                                 "calibration": f"{args.nsamples}x{args.seqlen} c4", "rows": rows,
                                 "cpu_threads": os.cpu_count()})


if __name__ == "__main__":
    main()
