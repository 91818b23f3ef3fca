"""Whole-pipeline timing on a GPU: the real driver (calibration forward passes, one H per distinct
input, every target linear, the pruned block re-run) on a randomly initialised model of a real
architecture, so that no checkpoint has to reach the GPU host. Random weights and random token ids
make the errors meaningless for quality; the times are what a job of that shape costs.

    python bench/gpu_model.py                                  # smollm2 shapes, all 30 blocks
    python bench/gpu_model.py --preset llama7b --blocks 1      # one LLaMA-7B block, 128x2048 tokens
    python bench/gpu_model.py --device cpu --preset tiny       # smoke run, no GPU

Prints seconds per method and the ratio to SparseGPT from the same process, plus the seconds per
layer kind; writes bench/results/gpu_model.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_json

from pruning_core import Pattern, PruneSpec
from pruning_core.driver import prune_model

# Shapes of the real models; the block count is a flag. (hidden, intermediate, heads, kv heads, vocab)
PRESETS = {
    "smollm2": {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3,
                "vocab_size": 49152, "layers": 30, "nsamples": 64, "seqlen": 512},
    "llama7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32,
                "vocab_size": 32000, "layers": 32, "nsamples": 128, "seqlen": 2048},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
             "vocab_size": 256, "layers": 2, "nsamples": 8, "seqlen": 64},
}


def build(preset: str, blocks: int | None):
    from transformers import LlamaConfig, LlamaForCausalLM

    p = dict(PRESETS[preset])
    layers, nsamples, seqlen = p.pop("layers"), p.pop("nsamples"), p.pop("seqlen")
    config = LlamaConfig(num_hidden_layers=blocks or layers, max_position_embeddings=max(seqlen, 128), **p)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(0, config.vocab_size, (nsamples, seqlen), generator=torch.Generator().manual_seed(0))
    return model, ids  # ids: [nsamples, seqlen]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="smollm2")
    ap.add_argument("--blocks", type=int, help="how many blocks to build (default: the real model's)")
    ap.add_argument("--methods", default="wanda,sparsegpt,alps,pgz")
    ap.add_argument("--setting", default="0.5", help="a sparsity (0.5) or an N:M pattern (2:4)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="gpu_model.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu_model.py needs CUDA (or --device cpu for a smoke run)")
    model, ids = build(args.preset, args.blocks)
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    pattern = Pattern.parse(args.setting if ":" in args.setting else None)
    sparsity = None if pattern.is_nm else float(args.setting)
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "preset": args.preset, "blocks": model.config.num_hidden_layers, "calibration": list(ids.shape),
           "setting": args.setting, "dtype": "float32", "tf32": "off inside solvers", "torch": torch.__version__}
    # warm-up: kernels, cuBLAS/cuSOLVER handles, the allocator, on a throwaway tiny model
    tiny, tiny_ids = build("tiny", None)
    for method in args.methods.split(","):
        prune_model(tiny, tiny_ids, PruneSpec(method, sparsity=sparsity, pattern=pattern), device=device)
    rows = []
    for method in args.methods.split(","):
        model.load_state_dict(dense)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        result = prune_model(model, ids, PruneSpec(method, sparsity=sparsity, pattern=pattern), device=device)
        seconds = time.perf_counter() - t
        by_kind: dict[str, float] = defaultdict(float)
        for layer in result.layers:
            by_kind[layer.name.rsplit(".", 1)[-1]] += layer.seconds
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        rows.append({"method": method, "seconds": seconds, "layer_seconds": sum(by_kind.values()),
                     "by_kind": dict(by_kind), "sparsity": result.sparsity, "peak_gib": peak,
                     "mean_rel_error": sum(r.rel_error for r in result.layers) / len(result.layers)})
        print(f"{method}: {seconds:.1f} s", flush=True)
    base = next((r["seconds"] for r in rows if r["method"] == "sparsegpt"), None)
    kinds = list(rows[0]["by_kind"])
    table = [[r["method"], f"{r['seconds']:.2f}", f"{r['seconds'] / base:.2f}x" if base else "-", f"{r['layer_seconds']:.2f}",
              *(f"{r['by_kind'][k]:.2f}" for k in kinds),
              f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"] for r in rows]
    print()
    print_table(["method", "seconds", "vs sparsegpt", "in layers", *(f"{k} s" for k in kinds), "peak GiB"], table)
    path = write_json(args.out, {"env": env, "rows": rows})
    print(f"\n{env}\nwrote {path}")


if __name__ == "__main__":
    main()
