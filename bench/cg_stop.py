"""ALPS's CG refit: how many iterations each stopping rule takes, and how far from the exact
least-squares optimum on the same support it stops.

For each layer shape and setting, ADMM runs once; then the refit runs from the same projected
iterate under each rule: the residual test alone (rtol 1e-4, the reference behaviour) and the
residual test plus the objective test at several ftol values (ALPS's default is `cg_ftol`).
The optimum is CG run to rtol 1e-6. Gaps are (objective − optimum) / optimum, in the
normalized space the solver works in.

    .venv/bin/python bench/cg_stop.py                                   # CPU, LLaMA-7B shapes / 4
    python bench/cg_stop.py --device cuda --shapes 4096x4096,11008x4096,4096x11008 --tokens 262144

Synthetic correlated inputs as in bench/gpu_layer.py. Writes bench/results/cg_stop.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_json
from gpu_layer import Clock, spec_for, synthetic_stats

from pruning_core.methods.alps import ALPSOptions, admm, kept_count, normalize, project, reconstruction_energy
from pruning_core.numerics import no_tf32
from pruning_core.refit import cg_refit

RULES = [("residual 1e-4", None), ("+ ftol 1e-7", 1e-7), ("+ ftol 1e-6", 1e-6), ("+ ftol 1e-5", 1e-5)]


def problem(m: int, n: int, tokens: int, setting: str, device):
    """ADMM's projected iterate for one synthetic layer: (Ĥ, G, B, keep, B₀)."""
    stats = synthetic_stats(n, tokens, device)
    W = torch.randn(m, n, device=device, generator=torch.Generator(device=device).manual_seed(1)) * 0.02
    spec = spec_for("alps", setting)
    o = ALPSOptions()
    Hn, d, evals, Q = normalize(stats.H, o.percdamp)
    B0 = (W * d.unsqueeze(0)).T.contiguous()  # [n, m]
    G = Hn @ B0  # [n, m]
    k = kept_count(n * m, spec)
    run = admm(Hn, Q, evals, B0, G, spec.pattern, k, o)
    keep = project(run.B, spec.pattern, k)
    return Hn, G, run.B * keep, keep, B0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="1024x1024,2752x1024,1024x2752", help="m x n (out x in)")
    ap.add_argument("--settings", default="0.5,0.7,2:4")
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="cg_stop.json", help="file name under bench/results, or a path")
    args = ap.parse_args()
    device = torch.device(args.device)
    clock = Clock(device)
    rows, table = [], []
    with no_tf32():
        for shape in args.shapes.split(","):
            m, n = map(int, shape.split("x"))
            for setting in args.settings.split(","):
                Hn, G, B, keep, B0 = problem(m, n, args.tokens, setting, device)
                start = reconstruction_energy(B, B0, Hn)
                best = reconstruction_energy(cg_refit(Hn, G, B, keep, rtol=1e-6, max_iter=1000).B, B0, Hn)
                base_seconds = None
                for rule, ftol in RULES:
                    fit, seconds = clock.time(partial(cg_refit, Hn, G, B, keep, 1e-4, 100, start if ftol else None, ftol or 0.0))
                    base_seconds = base_seconds or seconds
                    gap = (reconstruction_energy(fit.B, B0, Hn) - best) / best
                    rows.append({"shape": [m, n], "setting": setting, "rule": rule, "ftol": ftol, "iterations": fit.iterations,
                                 "stop": fit.stop, "seconds": seconds, "gap_vs_optimum": gap,
                                 "refit_gain": (start - best) / best})
                    table.append([shape, setting, rule, str(fit.iterations), fit.stop, f"{seconds:.2f}",
                                  f"{seconds / base_seconds:.2f}", f"{gap:.1e}", f"{(start - best) / best:.1e}"])
                    print(" | ".join(table[-1]), flush=True)
    print()
    print_table(["m x n", "setting", "rule", "CG iters", "stopped by", "seconds", "x residual rule",
                 "gap vs optimum", "ADMM gap (refit's gain)"], table)
    env = {"device": torch.cuda.get_device_name(device) if clock.cuda else "cpu", "tokens": args.tokens,
           "torch": torch.__version__}
    print(f"\nwrote {write_json(args.out, {'env': env, 'rows': rows})}")


if __name__ == "__main__":
    main()
