"""SparseGPT layer parity: our SparseGPT and llm-compressor's `sparsify_weight` on the same real
SmolLM2-135M layers and the same Hessian (the layer protocol's dense-model calibration inputs).
When the two agree layer by layer, a perplexity gap between whole-model rows (bench/quality.py)
comes from the forward passes that feed each block, not from the solver.

    .venv/bin/python bench/sgpt_parity.py
    .venv/bin/python bench/sgpt_parity.py --blocks 0 --layers q_proj --settings 0.7

Prints a table and writes bench/results/sgpt_parity.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Protocol, code_version, print_table, write_json
from layer import SUBMODULE, capture_stats

from pruning_core import METHODS, PruneSpec
from pruning_core.stats import relative_error


def theirs(W: torch.Tensor, H: torch.Tensor, sparsity: float, blocksize: int, percdamp: float) -> torch.Tensor:
    """llm-compressor's unstructured SparseGPT with our run's block size and damping."""
    from llmcompressor.modifiers.pruning.sparsegpt.sgpt_sparsify import sparsify_weight

    layer = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
    layer.weight.data = W.clone()
    # it takes the Hessian as 2·XᵀX/N and consumes it; the scale cancels in its damping and updates
    _, pruned = sparsify_weight(layer, {layer: 2 * H.clone()}, sparsity, 0, 0, blocksize, percdamp, False)
    return pruned.detach().reshape(W.shape)  # [out, in]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", default="0,15,29")
    ap.add_argument("--layers", default="q_proj,down_proj")
    ap.add_argument("--settings", default="0.6,0.7,0.8")
    ap.add_argument("--out", default="sgpt_parity.json")
    args = ap.parse_args()

    proto = Protocol()
    names = [f"model.layers.{b}.{SUBMODULE[l]}" for b in args.blocks.split(",") for l in args.layers.split(",")]
    rows, table = [], []
    for name, (W, stats) in capture_stats(proto, names).items():
        for sparsity in map(float, args.settings.split(",")):
            spec = PruneSpec("sparsegpt", sparsity=sparsity)
            stats.cache.clear()
            options = spec.method_options()
            ours = METHODS["sparsegpt"].prune_layer(W.clone(), stats, spec, options).weight
            ref = theirs(W, stats.H, sparsity, options.blocksize, options.percdamp)
            row = {"layer": name, "sparsity": sparsity,
                   "mask_agreement": float(((ours == 0) == (ref == 0)).float().mean()),
                   "max_abs_weight_diff": float((ours - ref).abs().max()),
                   "rel_error_topiary": relative_error(W, ours, stats.H),
                   "rel_error_llmc": relative_error(W, ref, stats.H),
                   "zeros_topiary": float((ours == 0).float().mean()), "zeros_llmc": float((ref == 0).float().mean())}
            rows.append(row)
            table.append([name, sparsity, f"{row['mask_agreement']:.6f}", f"{row['max_abs_weight_diff']:.2e}",
                          f"{row['rel_error_topiary']:.5f}", f"{row['rel_error_llmc']:.5f}",
                          f"{row['rel_error_topiary'] / row['rel_error_llmc']:.4f}"])
    print_table(["layer", "sparsity", "mask agreement", "max |ΔW|", "rel error topiary", "rel error llmc", "ratio"], table)
    path = write_json(args.out, {"code": code_version(), "protocol": proto.describe(), "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
