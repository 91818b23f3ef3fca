"""Layer protocol (benchmarks.md): single real layers of SmolLM2-135M with their dense-model
calibration inputs (64×512 C4, seed 0). For each method and setting: the relative
reconstruction error ‖(W−Ŵ)X‖²/‖WX‖², seconds, and the exact least-squares refit on that
method's support (the floor for the support it chose).

    .venv/bin/python bench/layer.py
    .venv/bin/python bench/layer.py --blocks 0 --layers q_proj --settings 0.7 --methods alps,sparsegpt

Prints a table and writes bench/results/layer.json.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Protocol, print_table, timed, write_json

from pruning_core import METHODS, Pattern, PruneSpec
from pruning_core.numerics import no_tf32
from pruning_core.oracle import exact_refit
from pruning_core.stats import GramAccumulator, relative_error

SUBMODULE = {"q_proj": "self_attn.q_proj", "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj",
             "down_proj": "mlp.down_proj"}


@torch.no_grad()
def capture_stats(proto: Protocol, names: list[str]) -> dict:
    """H = XᵀX/N of each named layer's input in the dense model, over all calibration tokens."""
    model = proto.fresh_model()
    accs, handles = {}, []
    for name in names:
        layer = model.get_submodule(name)
        accs[name] = GramAccumulator(layer.in_features, torch.device("cpu"))
        handles.append(layer.register_forward_hook(lambda mod, args, out, acc=accs[name]: acc.add(args[0])))
    for start in range(0, proto.calib.shape[0], 8):
        model(input_ids=proto.calib[start : start + 8], use_cache=False)
    for h in handles:
        h.remove()
    return {name: (model.get_submodule(name).weight.detach().clone(), acc.finish()) for name, acc in accs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", default="0,15")
    ap.add_argument("--layers", default="q_proj,o_proj,gate_proj,down_proj")
    ap.add_argument("--methods", default="magnitude,wanda,sparsegpt,pgz,alps")
    ap.add_argument("--settings", default="0.5,0.6,0.7,0.8,0.9,2:4")
    ap.add_argument("--no-floor", action="store_true", help="skip the exact refit (slow on big layers)")
    ap.add_argument("--out", default="layer.json")
    args = ap.parse_args()

    proto = Protocol()
    names = [f"model.layers.{b}.{SUBMODULE[l]}" for b in args.blocks.split(",") for l in args.layers.split(",")]
    problems = capture_stats(proto, names)
    rows, table = [], []
    for name, (W, stats) in problems.items():
        for setting in args.settings.split(","):
            pattern = Pattern.parse(setting if ":" in setting else None)
            for method in args.methods.split(","):
                spec = PruneSpec(method, sparsity=None if pattern.is_nm else float(setting), pattern=pattern)
                stats.cache.clear()  # time each method with its own factorization
                with no_tf32():
                    res, seconds = timed(partial(METHODS[method].prune_layer, W.clone(), stats, spec, spec.method_options()))
                err = relative_error(W, res.weight, stats.H)
                floor = None if args.no_floor else relative_error(W, exact_refit(W, stats.H, res.mask), stats.H)
                rows.append({"layer": name, "shape": list(W.shape), "setting": setting, "method": method,
                             "rel_error": err, "floor": floor, "seconds": seconds})
                table.append([name.replace("model.layers.", ""), setting, method, f"{err:.4e}",
                              "" if floor is None else f"{floor:.4e}", f"{seconds:.2f}"])
                print(" | ".join(table[-1]), flush=True)
                write_json(args.out, {"protocol": proto.describe(), "rows": rows})
    print()
    print_table(["layer", "setting", "method", "rel error", "LS floor on support", "seconds"], table)
    print(f"\nwrote {write_json(args.out, {'protocol': proto.describe(), 'rows': rows})}")


if __name__ == "__main__":
    main()
