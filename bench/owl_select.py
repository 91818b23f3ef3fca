"""Choose OWL's knobs on WikiText-2 *validation* perplexity (wiki.valid.raw), never on the test
windows the quality tables report: one method at one sparsity, the fixed CPU protocol's model and
calibration, each (M, λ) of a grid (λ = 0 is the uniform profile), the best validation
perplexity wins.

    .venv/bin/python bench/owl_select.py --method alps --sparsity 0.7 --lambdas 0,0.08,0.16,0.24 --ms 5
    .venv/bin/python bench/owl_select.py --lambdas 0.08 --ms 5,10 --statistics sample_norms,norms

`--statistics` also compares how ‖x_j‖ in OWL's scores is measured: "sample_norms" (the default:
the mean of per-sample norms, llm-compressor's) or "norms" (the all-token norm of the paper's code).
`--granularities` compares OWL's one outlier ratio per block ("block", the paper's and the driver's)
with one per pruned layer ("layer": each layer offset by its own ratio, min-max over all layers).

    .venv/bin/python bench/owl_select.py --lambdas 0.08 --ms 5,10 --granularities layer

Prints a table and writes bench/results/owl_select.json (the rows and the choice).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Protocol, code_version, print_table, timed, write_json

from pruning_core import PruneSpec, driver, prune_model
from pruning_core.profiles import OWL_NORMS, layer_slots, owl_ratios
from pruning_core.spec import CalibrationSpec, SparsityProfile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="alps")
    ap.add_argument("--sparsity", type=float, default=0.7)
    ap.add_argument("--lambdas", default="0,0.08,0.16,0.24", help="comma-separated; 0 = uniform")
    ap.add_argument("--ms", default="5", help="comma-separated outlier thresholds M")
    ap.add_argument("--statistics", default="sample_norms", help=f"comma-separated, from {', '.join(OWL_NORMS)}")
    ap.add_argument("--granularities", default="block", help="comma-separated, from block, layer")
    ap.add_argument("--nsamples", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--out", default="owl_select.json")
    args = ap.parse_args()
    proto = Protocol(args.nsamples, args.seqlen, args.windows, split="valid")
    grid = [(0.0, None, None, "block")] if "0" in args.lambdas.split(",") else []
    grid += [(float(lam), float(m), stat, gran) for lam in args.lambdas.split(",") if float(lam) > 0
             for m in args.ms.split(",") for stat in args.statistics.split(",")
             for gran in args.granularities.split(",")]
    rows = []
    for lam, m, stat, gran in grid:
        per_layer = gran == "layer"
        if stat is not None:  # the driver's OWL pass, measuring ‖x_j‖ this way
            driver.owl_ratios = functools.partial(owl_ratios, statistic=stat, per_layer=per_layer)
        driver.layer_slots = functools.partial(layer_slots, per_layer=per_layer)
        profile = SparsityProfile("owl", m, lam) if lam > 0 else SparsityProfile()
        spec = PruneSpec(args.method, sparsity=args.sparsity, profile=profile,
                         calibration=CalibrationSpec("c4", proto.nsamples, proto.seqlen, proto.seed))
        model = proto.fresh_model()
        result, seconds = timed(functools.partial(prune_model, model, proto.calib, spec, "cpu"))
        ppl = proto.ppl(model)
        rows.append({"method": args.method, "sparsity": args.sparsity, "profile": profile.kind, "owl_m": m,
                     "owl_lambda": lam, "statistic": stat, "granularity": gran, "valid_ppl": ppl, "seconds": seconds, "sparsity_achieved": result.sparsity,
                     # per block, or per layer in driver order with --granularities layer
                     "outlier_ratios": result.profile.get("block_outlier_ratios")})
        print(f"  {args.method} {args.sparsity} {profile.kind} M={m} λ={lam} {stat or ''} {gran}: valid ppl {ppl:.3f} ({seconds:.0f}s)",
              flush=True)
        write_json(args.out, {"code": code_version(), "protocol": proto.describe(), "rows": rows, "chosen": None})
    owl = [r for r in rows if r["profile"] == "owl"]
    chosen = min(owl, key=lambda r: r["valid_ppl"]) if owl else None
    print_table(["profile", "M", "λ", "statistic", "granularity", "valid ppl", "seconds"],
                [[r["profile"], r["owl_m"], r["owl_lambda"], r["statistic"] or "", r["granularity"], f"{r['valid_ppl']:.3f}",
                  f"{r['seconds']:.0f}"] for r in rows])
    if chosen:
        print(f"chosen on validation: M={chosen['owl_m']} λ={chosen['owl_lambda']} {chosen['statistic']} "
              f"{chosen['granularity']}")
    write_json(args.out, {"code": code_version(), "protocol": proto.describe(), "rows": rows,
                          "chosen": chosen and {k: chosen[k] for k in ("owl_m", "owl_lambda", "statistic", "granularity")}})


if __name__ == "__main__":
    main()
