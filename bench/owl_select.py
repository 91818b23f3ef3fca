"""Choose OWL's knobs on WikiText-2 *validation* perplexity (wiki.valid.raw), never on the test
windows the quality tables report: one method at one sparsity, the fixed CPU protocol's model and
calibration, each (M, λ) of a grid (λ = 0 is the uniform profile), the best validation
perplexity wins.

    .venv/bin/python bench/owl_select.py --method alps --sparsity 0.7 --lambdas 0,0.08,0.16,0.24 --ms 5

Prints a table and writes bench/results/owl_select.json (the rows and the choice).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Protocol, code_version, print_table, timed, write_json  # noqa: E402

from pruning_core import PruneSpec, prune_model  # noqa: E402
from pruning_core.spec import CalibrationSpec, SparsityProfile  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="alps")
    ap.add_argument("--sparsity", type=float, default=0.7)
    ap.add_argument("--lambdas", default="0,0.08,0.16,0.24", help="comma-separated; 0 = uniform")
    ap.add_argument("--ms", default="5", help="comma-separated outlier thresholds M")
    ap.add_argument("--nsamples", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--out", default="owl_select.json")
    args = ap.parse_args()
    proto = Protocol(args.nsamples, args.seqlen, args.windows, split="valid")
    grid = [(0.0, None)] if "0" in args.lambdas.split(",") else []
    grid += [(float(lam), float(m)) for lam in args.lambdas.split(",") if float(lam) > 0 for m in args.ms.split(",")]
    rows = []
    for lam, m in grid:
        profile = SparsityProfile("owl", m, lam) if lam > 0 else SparsityProfile()
        spec = PruneSpec(args.method, sparsity=args.sparsity, profile=profile,
                         calibration=CalibrationSpec("c4", proto.nsamples, proto.seqlen, proto.seed))
        model = proto.fresh_model()
        result, seconds = timed(lambda: prune_model(model, proto.calib, spec, "cpu"))
        ppl = proto.ppl(model)
        rows.append({"method": args.method, "sparsity": args.sparsity, "profile": profile.kind, "owl_m": m,
                     "owl_lambda": lam, "valid_ppl": ppl, "seconds": seconds, "sparsity_achieved": result.sparsity})
        print(f"  {args.method} {args.sparsity} {profile.kind} M={m} λ={lam}: valid ppl {ppl:.3f} ({seconds:.0f}s)",
              flush=True)
        write_json(args.out, {"code": code_version(), "protocol": proto.describe(), "rows": rows, "chosen": None})
    owl = [r for r in rows if r["profile"] == "owl"]
    chosen = min(owl, key=lambda r: r["valid_ppl"]) if owl else None
    print_table(["profile", "M", "λ", "valid ppl", "seconds"],
                [[r["profile"], r["owl_m"], r["owl_lambda"], f"{r['valid_ppl']:.3f}", f"{r['seconds']:.0f}"] for r in rows])
    if chosen:
        print(f"chosen on validation: M={chosen['owl_m']} λ={chosen['owl_lambda']}")
    write_json(args.out, {"code": code_version(), "protocol": proto.describe(), "rows": rows,
                          "chosen": chosen and {"owl_m": chosen["owl_m"], "owl_lambda": chosen["owl_lambda"]}})


if __name__ == "__main__":
    main()
