"""Where do our pipeline and llm-compressor's part ways? Prune the protocol model with both (same
method, sparsity, profile and calibration tensors) and compare the kept weights block by block.

Block 0 sees identical inputs in both, so its masks show what the pipelines' statistics and
solvers do differently; later blocks also carry every earlier difference forward. If the
agreement falls the same way with and without OWL, OWL adds no systematic difference of its own.

    .venv/bin/python bench/mask_parity.py --seed 1 --runs sparsegpt@0.7,sparsegpt+owl@0.7

Prints a table (agreement of the pruned sets per block) and writes bench/results/mask_parity.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Protocol, print_table, write_json
from quality import OWL, run_llmcompressor, run_ours


def pruned_sets(model) -> list[dict[str, torch.Tensor]]:
    """Per decoder block: linear name -> boolean [out, in] tensor of its zero weights."""
    return [{name: (m.weight == 0).clone() for name, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
            for block in model.model.layers]


def agreement(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Jaccard index of the two pruned sets over one block, and its worst linear."""
    def jaccard(a, b):
        return float((a & b).sum()) / max(int((a | b).sum()), 1)
    per_layer = {name: jaccard(ours[name], theirs[name]) for name in ours}
    both = sum(int((ours[n] & theirs[n]).sum()) for n in ours)
    either = sum(int((ours[n] | theirs[n]).sum()) for n in ours)
    worst = min(per_layer, key=per_layer.get)
    return {"jaccard": both / max(either, 1), "worst_layer": worst, "worst_jaccard": per_layer[worst]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="sparsegpt@0.7,sparsegpt+owl@0.7", help="method[+owl]@sparsity, each run by both")
    ap.add_argument("--seed", type=int, default=0, help="calibration draw")
    ap.add_argument("--nsamples", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8, help="our driver's forward batch")
    ap.add_argument("--windows", type=int, default=64, help="WikiText-2 test windows for the perplexity column")
    ap.add_argument("--owl-m", type=float, default=5.0)
    ap.add_argument("--owl-lambda", type=float, default=0.08)
    ap.add_argument("--out", default="mask_parity.json")
    args = ap.parse_args()
    OWL.update(m=args.owl_m, **{"lambda": args.owl_lambda})
    logging.basicConfig(level=logging.WARNING)

    proto = Protocol(args.nsamples, args.seqlen, args.windows, args.seed)
    results = []
    for item in args.runs.split(","):
        method, _, setting = item.partition("@")
        ppl_ours, _, _ = run_ours(proto, method, setting, args.batch_size)
        ours = pruned_sets(proto.model)
        ppl_theirs, _, _ = run_llmcompressor(proto, method, setting, "re:.*lm_head")
        theirs = pruned_sets(proto.model)
        blocks = [agreement(o, t) for o, t in zip(ours, theirs)]
        results.append({"run": item, "ppl_topiary": ppl_ours, "ppl_llmcompressor": ppl_theirs, "blocks": blocks,
                        **({"owl": dict(OWL)} if "owl" in method else {})})
        print(f"{item}: ppl {ppl_ours:.2f} (topiary) / {ppl_theirs:.2f} (llm-compressor)", flush=True)
        write_json(args.out, {"protocol": proto.describe(), "batch_size": args.batch_size, "results": results})

    rows = [[i] + [f"{r['blocks'][i]['jaccard']:.4f} ({r['blocks'][i]['worst_layer']} {r['blocks'][i]['worst_jaccard']:.4f})"
                   for r in results] for i in range(len(results[0]["blocks"]))]
    print()
    print_table(["block"] + [f"{r['run']}: pruned-set Jaccard (worst linear)" for r in results], rows)
    print(f"\nwrote {write_json(args.out, {'protocol': proto.describe(), 'batch_size': args.batch_size, 'results': results})}")


if __name__ == "__main__":
    main()
