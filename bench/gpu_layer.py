"""GPU shape protocol (benchmarks.md): LLaMA-7B-sized layers with synthetic correlated inputs,
timed with CUDA events after a warm-up; ALPS vs SparseGPT (and Wanda), seconds per layer and
relative error. Needs CUDA; run it on a GPU host:

    python bench/gpu_layer.py                       # 4096x4096, 11008x4096, 4096x11008
    python bench/gpu_layer.py --shapes 4096x4096 --tokens 65536

X = Z·A with Z Gaussian and A a random matrix with a decaying spectrum; H = XᵀX is accumulated
in chunks so N = 128×2048 tokens never sits in memory at once. Records GPU model, dtype and the
TF32 setting with every number; writes bench/results/gpu_layer.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_json  # noqa: E402

from pruning_core import METHODS, Pattern, PruneSpec  # noqa: E402
from pruning_core.numerics import no_tf32  # noqa: E402
from pruning_core.stats import GramAccumulator, relative_error  # noqa: E402


def synthetic_stats(n: int, tokens: int, device, seed: int = 0, chunk: int = 16384):
    g = torch.Generator(device=device).manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, device=device, generator=g))
    A = Q * (torch.arange(1, n + 1, device=device, dtype=torch.float32) ** -0.5)  # decaying spectrum
    acc = GramAccumulator(n, device)
    for _ in range(0, tokens, chunk):
        acc.add(torch.randn(chunk, n, device=device, generator=g) @ A.T)  # [chunk, n]
    return acc.finish()


def cuda_time(fn, repeats: int = 1) -> tuple[object, float]:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        out = fn()
    end.record()
    torch.cuda.synchronize()
    return out, start.elapsed_time(end) / 1000 / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="4096x4096,11008x4096,4096x11008", help="m x n (out x in)")
    ap.add_argument("--methods", default="wanda,sparsegpt,alps")
    ap.add_argument("--settings", default="0.5,0.7,2:4")
    ap.add_argument("--tokens", type=int, default=128 * 2048)
    ap.add_argument("--out", default="gpu_layer.json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/gpu_layer.py needs CUDA")
    device = torch.device("cuda")
    env = {"gpu": torch.cuda.get_device_name(device), "dtype": "float32", "tf32": "off inside solvers",
           "tokens": args.tokens, "torch": torch.__version__}
    rows, table = [], []
    for shape in args.shapes.split(","):
        m, n = map(int, shape.split("x"))
        stats = synthetic_stats(n, args.tokens, device)
        W = torch.randn(m, n, device=device, generator=torch.Generator(device=device).manual_seed(1)) * 0.02
        for setting in args.settings.split(","):
            pattern = Pattern.parse(setting if ":" in setting else None)
            for method in args.methods.split(","):
                spec = PruneSpec(method, sparsity=0.0 if pattern.is_nm else float(setting), pattern=pattern)
                run = lambda st=stats, sp=spec, m=method: METHODS[m].prune_layer(W, st, sp, sp.method_options())  # noqa: E731
                with no_tf32():
                    stats.cache.clear()
                    run()  # warm-up (kernels, allocator)
                    stats.cache.clear()  # timed run includes the factorization, as in a real job
                    res, seconds = cuda_time(run)
                err = relative_error(W, res.weight, stats.H, dtype=torch.float32)
                rows.append({"shape": [m, n], "setting": setting, "method": method, "seconds": seconds,
                             "rel_error": err, **{k: v for k, v in res.info.items() if isinstance(v, (int, float))}})
                table.append([shape, setting, method, f"{seconds:.2f}", f"{err:.4e}"])
                print(" | ".join(table[-1]), flush=True)
        del stats
        torch.cuda.empty_cache()
    print()
    print_table(["m x n", "setting", "method", "seconds", "rel error"], table)
    print(f"\n{env}\nwrote {write_json(args.out, {'env': env, 'rows': rows})}")


if __name__ == "__main__":
    main()
