"""How to find a layer-wide top-k threshold fast: the kth largest of m·n scores, once per ALPS
iteration. Compares torch.kthvalue, torch.topk(sorted=False), a full sort and our radix select
(pruning_core.masks.kth_largest) on layer-sized tensors, checks they agree, and times them.

    python bench/select_threshold.py                    # CUDA, 4096x4096 and 11008x4096
    python bench/select_threshold.py --device cpu --sizes 1024x1024
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_json

from pruning_core.masks import kth_largest

STRATEGIES = {
    "kthvalue": lambda flat, k: torch.kthvalue(flat, flat.numel() - k + 1).values,
    "topk": lambda flat, k: torch.topk(flat, k, sorted=False).values.min(),
    "sort": lambda flat, k: torch.sort(flat).values[flat.numel() - k],
    "radix": kth_largest,
}


def timed(fn, device, repeats: int) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    float(out)  # waits for the device
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4096x4096,11008x4096")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default="select_threshold.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    rows, table = [], []
    for size in args.sizes.split(","):
        m, n = map(int, size.split("x"))
        g = torch.Generator(device=device).manual_seed(0)
        flat = torch.randn(m * n, device=device, generator=g).abs()  # [m*n], like |Z| in ALPS
        k = m * n // 2
        truth = float(torch.sort(flat).values[m * n - k])
        base = None
        for name, fn in STRATEGIES.items():
            value = float(fn(flat, k))
            seconds = timed(partial(fn, flat, k), device, args.repeats)
            base = base or seconds
            rows.append({"size": [m, n], "strategy": name, "seconds": seconds, "agrees": value == truth})
            table.append([size, name, f"{seconds * 1e3:.2f}", f"{base / seconds:.1f}x", str(value == truth)])
            print(" | ".join(table[-1]), flush=True)
    print()
    print_table(["m x n", "strategy", "ms", "speed-up vs kthvalue", "exact"], table)
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__}
    print(f"\n{env}\nwrote {write_json(args.out, {'env': env, 'rows': rows})}")


if __name__ == "__main__":
    main()
