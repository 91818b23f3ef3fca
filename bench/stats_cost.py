"""What each method's declared statistics save (issue: "each method asks only for what it uses"):
magnitude and Wanda whole-model pruning time, peak memory while pruning, and perplexity on the
fixed CPU protocol (common.Protocol), this code side by side with an older commit's that
accumulated the full H for every method.

    git worktree add /tmp/before <commit>; ln -s $PWD/.venv /tmp/before/.venv
    .venv/bin/python bench/stats_cost.py --before /tmp/before        # writes bench/results/stats_cost.json

Every run is its own process (`--rounds` alternating before/ours, the median reported); the peak is
the highest RSS sampled while `prune_model` ran, above the RSS it started from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20  # kB -> GiB
    return 0.0


def child(method: str) -> None:
    from common import Protocol

    from pruning_core import PruneSpec, prune_model

    proto = Protocol()
    spec = PruneSpec(method, sparsity=0.5)
    model = proto.fresh_model()
    start, peak, done = _rss_gib(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_gib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = prune_model(model, proto.calib, spec, "cpu")
    done.set()
    sampler.join()
    print(json.dumps({"seconds": result.seconds, "peak_gib": max(peak[0], _rss_gib()) - start,
                      "ppl": proto.ppl(model), "sparsity": result.sparsity}))


def measure(code: Path, method: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", method], cwd=code, env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{code} {method} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=False, help="a worktree of the older commit")
    ap.add_argument("--methods", nargs="+", default=["magnitude", "wanda"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="stats_cost.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    from common import print_table, write_json

    codes = {"ours": HERE.parent, **({"before": args.before} if args.before else {})}
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in range(args.rounds):
        for method in args.methods:
            for name in (list(codes) if r % 2 == 0 else list(codes)[::-1]):  # alternate who goes first
                row = measure(codes[name], method)
                runs.setdefault((name, method), []).append(row)
                print(f"round {r + 1} {name:<6} {method:<9} {row['seconds']:7.2f} s  peak +{row['peak_gib']:.3f} GiB  "
                      f"ppl {row['ppl']:.4f}", flush=True)
    rows, table = [], []
    for method in args.methods:
        med = {name: {k: statistics.median(x[k] for x in runs[(name, method)]) for k in ("seconds", "peak_gib", "ppl")}
               for name in codes}
        for name in codes:
            m = med[name]
            ratio = m["seconds"] / med["before"]["seconds"] if "before" in med else None
            rows.append({"code": name, "method": method, **m, "time_vs_before": ratio,
                         "runs": runs[(name, method)]})
            table.append([name, method, f"{m['seconds']:.2f}", f"{ratio:.3f}" if ratio else "",
                          f"{m['peak_gib']:.3f}", f"{m['ppl']:.4f}"])
    print()
    print_table(["code", "method", "prune s (median)", "time / before", "peak above start GiB", "wikitext2 ppl"], table)
    print(write_json(args.out, {"protocol": "smol-cpu: SmolLM2-135M fp32, 64x512 c4, wikitext2 64x512, 50%",
                                "before": str(args.before), "rounds": args.rounds, "rows": rows}))


if __name__ == "__main__":
    main()
