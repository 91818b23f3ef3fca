"""GPU shape protocol (benchmarks.md): LLaMA-7B-sized layers with synthetic correlated inputs,
timed with CUDA events after a warm-up; ALPS vs SparseGPT (and Wanda, PGZ), seconds per layer,
relative error and peak GPU memory. Run it on a GPU host:

    python bench/gpu_layer.py                       # 4096x4096, 11008x4096, 4096x11008 (m x n)
    python bench/gpu_layer.py --shapes 4096x4096 --tokens 65536
    python bench/gpu_layer.py --device cpu --shapes 64x128 --tokens 4096   # smoke run, no GPU

X = Z·A with Z Gaussian and A a random matrix with a decaying spectrum; H = XᵀX is accumulated
in chunks so N = 128×2048 tokens never sits in memory at once. Each timed run starts from an empty
statistics cache, so it includes the per-input factorization (ALPS's eigendecomposition,
SparseGPT's Cholesky, PGZ's preprocessing) as the first layer of a group pays it in a real job;
`setup` is that factorization's share, which the other layers of the group (k/v after q, up after
gate) do not pay again. Records GPU model, dtype and the TF32 setting with every number; writes
bench/results/gpu_layer.json (or --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_json

from pruning_core import METHODS, Pattern, PruneSpec
from pruning_core.numerics import no_tf32
from pruning_core.stats import GramAccumulator, LayerStats, relative_error


class Clock:
    """Wall time of a piece of device work: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def time(self, fn):
        if not self.cuda:
            t = time.perf_counter()
            out = fn()
            return out, time.perf_counter() - t
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        torch.cuda.synchronize()
        return out, start.elapsed_time(end) / 1000


class TimedStats(LayerStats):
    """LayerStats whose cached factorizations are timed, so setup and per-layer work separate."""

    clock: Clock
    setup_seconds: float = 0.0

    def cached(self, key, build):
        if key in self.cache:
            return self.cache[key]
        value, seconds = self.clock.time(build)
        self.setup_seconds += seconds
        self.cache[key] = value
        return value


def synthetic_stats(n: int, tokens: int, device, seed: int = 0, chunk: int = 16384) -> LayerStats:
    g = torch.Generator(device=device).manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, device=device, generator=g))
    A = Q * (torch.arange(1, n + 1, device=device, dtype=torch.float32) ** -0.5)  # decaying spectrum
    acc = GramAccumulator(n, device)
    for done in range(0, tokens, chunk):
        rows = min(chunk, tokens - done)
        acc.add(torch.randn(rows, n, device=device, generator=g) @ A.T)  # [rows, n]
    return acc.finish()


def spec_for(method: str, setting: str) -> PruneSpec:
    pattern = Pattern.parse(setting if ":" in setting else None)
    return PruneSpec(method, sparsity=None if pattern.is_nm else float(setting), pattern=pattern)


def run_once(W: torch.Tensor, base: LayerStats, spec: PruneSpec, clock: Clock):
    """One cold run (empty cache): (result, seconds, setup seconds)."""
    stats = TimedStats(H=base.H, tokens=base.tokens, mean=base.mean)
    stats.clock, stats.setup_seconds = clock, 0.0
    method = METHODS[spec.method]
    with no_tf32():
        res, seconds = clock.time(lambda: method.prune_layer(W, stats, spec, spec.method_options()))
    return res, seconds, stats.setup_seconds


def warm_up(methods: list[str], settings: list[str], device, clock: Clock) -> None:
    """Compile/load every kernel and cuBLAS/cuSOLVER handle once on a small problem, so the timed
    runs measure the work and not first-call overheads."""
    stats = synthetic_stats(512, 4096, device, seed=7)
    W = torch.randn(256, 512, device=device)
    for setting in settings:
        for method in methods:
            run_once(W, stats, spec_for(method, setting), clock)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="4096x4096,11008x4096,4096x11008", help="m x n (out x in)")
    ap.add_argument("--methods", default="wanda,sparsegpt,alps,pgz")
    ap.add_argument("--settings", default="0.5,0.7,2:4")
    ap.add_argument("--tokens", type=int, default=128 * 2048)
    ap.add_argument("--device", default="cuda", help="cuda (the protocol) or cpu (a smoke run)")
    ap.add_argument("--out", default="gpu_layer.json", help="file name under bench/results, or a path")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu_layer.py needs CUDA (or --device cpu for a smoke run)")
    clock = Clock(device)
    methods, settings = args.methods.split(","), args.settings.split(",")
    env = {"device": torch.cuda.get_device_name(device) if clock.cuda else "cpu", "dtype": "float32",
           "tf32": "off inside solvers", "tokens": args.tokens, "torch": torch.__version__,
           "timing": "CUDA events after a warm-up" if clock.cuda else "perf_counter"}
    warm_up(methods, settings, device, clock)
    rows, table = [], []
    for shape in args.shapes.split(","):
        m, n = map(int, shape.split("x"))
        stats = synthetic_stats(n, args.tokens, device)
        W = torch.randn(m, n, device=device, generator=torch.Generator(device=device).manual_seed(1)) * 0.02
        for setting in settings:
            for method in methods:
                if clock.cuda:
                    torch.cuda.reset_peak_memory_stats(device)
                    base_mem = torch.cuda.memory_allocated(device)  # W and H, already resident
                res, seconds, setup = run_once(W, stats, spec_for(method, setting), clock)
                peak = (torch.cuda.max_memory_allocated(device) - base_mem) / 2**20 if clock.cuda else None
                err = relative_error(W, res.weight, stats.H, dtype=torch.float32)
                info = {k: v for k, v in res.info.items() if isinstance(v, (int, float))}
                rows.append({"shape": [m, n], "setting": setting, "method": method, "seconds": seconds,
                             "setup_seconds": setup, "rel_error": err, "peak_extra_mib": peak, **info})
                # memory as a multiple of the layer (m·n fp32) plus one n×n fp32 matrix
                unit = (m * n + n * n) * 4 / 2**20
                mem = f"{peak:.0f} ({peak / unit:.1f}x)" if peak is not None else "-"
                table.append([shape, setting, method, f"{seconds:.2f}", f"{setup:.2f}", f"{err:.4e}", mem])
                print(" | ".join(table[-1]), flush=True)
                del res
        del stats, W
        if clock.cuda:
            torch.cuda.empty_cache()
    print()
    print_table(["m x n", "setting", "method", "seconds", "setup s", "rel error", "peak MiB (x(mn+n²))"], table)
    path = write_json(args.out, {"env": env, "rows": rows})
    print(f"\n{env}\nwrote {path}")


if __name__ == "__main__":
    main()
