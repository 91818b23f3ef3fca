"""Quality benchmark under the fixed CPU protocol: our methods side by side with llm-compressor's
SparseGPTModifier and WandaPruningModifier on the same model, calibration tensors and evaluation.

    .venv/bin/python bench/quality.py                       # full protocol (about an hour on 2 cores)
    .venv/bin/python bench/quality.py --settings 0.5 --methods sparsegpt --no-llmcompressor
    .venv/bin/python bench/quality.py --runs alps@0.7,alps+owl@0.7,llmc-sparsegpt+owl@0.7

A "+owl" suffix runs the OWL sparsity profile (--owl-m, --owl-lambda); llm-compressor's rows then
use its own OWL allocation (see run_llmcompressor). A "+dense" suffix (ours only) reconstructs
towards the dense model's layer outputs with weight --dense-target.

Prints a table and writes bench/results/quality.json (one row per method and setting).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Protocol, print_table, timed, write_json

from pruning_core import Pattern, PruneSpec, prune_model
from pruning_core.quant import QuantSpec
from pruning_core.spec import CalibrationSpec, SparsityProfile

OWL = {"m": 5.0, "lambda": 0.08}  # set from --owl-m / --owl-lambda
DENSE_TARGET = {"alpha": 0.3}  # set from --dense-target, for the "+dense" rows


def _options(text: str) -> dict:
    """"cg_ftol=0;restart=false" -> {"cg_ftol": 0.0, "restart": False}."""
    out = {}
    for item in filter(None, text.split(";")):
        key, _, value = item.partition("=")
        out[key] = {"true": True, "false": False}.get(value.lower(), None)
        if out[key] is None:
            out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return out


def block_sparsities(model) -> list[float]:
    """Fraction of zeros over each decoder block's linears (what a profile allocated)."""
    out = []
    for block in model.model.layers:
        linears = [m for m in block.modules() if isinstance(m, torch.nn.Linear)]
        out.append(sum(int((m.weight == 0).sum()) for m in linears) / sum(m.weight.numel() for m in linears))
    return out


def run_ours(proto: Protocol, method: str, setting: str, batch_size: int) -> tuple[float, float, float]:
    """`method` may carry a joint-quantization suffix ("pgz+int4", "sparsegpt+int4"), the OWL
    profile ("alps+owl"), the dense target ("alps+dense") and method options in braces
    ("alps{cg_ftol=0}")."""
    pattern = Pattern.parse(setting if ":" in setting else None)
    method, _, options = method.partition("{")
    name, *suffixes = method.split("+")
    quant = next((s for s in suffixes if s.startswith("int")), None)
    profile = SparsityProfile("owl", OWL["m"], OWL["lambda"]) if "owl" in suffixes else SparsityProfile()
    spec = PruneSpec(name, sparsity=None if pattern.is_nm else float(setting), pattern=pattern,
                     calibration=CalibrationSpec("c4", proto.nsamples, proto.seqlen, proto.seed),
                     quant=QuantSpec.parse(quant) if quant else None, options=_options(options.rstrip("}")),
                     profile=profile, dense_target=DENSE_TARGET["alpha"] if "dense" in suffixes else 0.0)
    model = proto.fresh_model()
    result, seconds = timed(lambda: prune_model(model, proto.calib, spec, "cpu", batch_size=batch_size))
    run_ours.blocks = block_sparsities(model)
    return proto.ppl(model), seconds, result.sparsity


@contextlib.contextmanager
def llmc_owl_workaround(cls):
    """llm-compressor 0.14.0.1's `sparsity_profile="owl"` raises "Cannot invoke event before
    initializing": its OWL pass runs a calibration pipeline from inside the modifier's
    initialization, whose lifecycle events the session refuses. Run that same pass
    (`_infer_owl_layer_sparsity`, unchanged) with those events silenced, and hand its result on
    as the per-decoder-layer list its `sparsity` also accepts (its dict form would be passed
    whole to every layer)."""
    from unittest import mock

    from llmcompressor.core import LifecycleCallbacks

    infer = cls._infer_owl_layer_sparsity

    def patched(self, model, layers, dataloader):
        with contextlib.ExitStack() as stack:
            for event in ("calibration_start", "sequential_epoch_end", "calibration_end"):
                stack.enter_context(mock.patch.object(LifecycleCallbacks, event, classmethod(lambda c, *a, **k: None)))
            by_layer = infer(self, model, layers, dataloader)
        return [by_layer[name] for name in layers]

    with mock.patch.object(cls, "_infer_owl_layer_sparsity", patched):
        yield


def run_llmcompressor(proto: Protocol, method: str, setting: str, ignore: str) -> tuple[float, float, float]:
    """llm-compressor 0.14 oneshot with the sequential pipeline on our exact calibration tensors.

    Its `ignore` matches exact module names or `re:` patterns; in 0.14.0.1 the plain "lm_head" of
    the protocol text still let lm_head (tied to the embeddings here) be pruned, so the default
    is the regex form, and the lm_head sparsity is recorded to prove it stayed dense."""
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier

    method, _, profile = method.partition("+")
    cls = {"sparsegpt": SparseGPTModifier, "wanda": WandaPruningModifier}[method]
    kwargs = {"mask_structure": setting} if ":" in setting else {"sparsity": float(setting)}
    if ":" in setting:
        kwargs["sparsity"] = Pattern.parse(setting).sparsity
    # a per-decoder-layer sparsity list needs the decoder layers as targets; with uniform
    # sparsity this prunes exactly what targets=["Linear"] does (checked: identical perplexity)
    targets = ["Linear"]
    if profile == "owl":
        kwargs.update(sparsity_profile="owl", owl_m=OWL["m"], owl_lmbda=OWL["lambda"])
        targets = [type(proto.model.model.layers[0]).__name__]
    recipe = cls(targets=targets, ignore=[ignore], **kwargs)
    ids = proto.calib.tolist()
    dataset = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(r) for r in ids]})
    model = proto.fresh_model()
    with llmc_owl_workaround(cls) if profile == "owl" else contextlib.nullcontext():
        _, seconds = timed(lambda: oneshot(model=model, dataset=dataset, recipe=recipe, pipeline="sequential",
                                           num_calibration_samples=len(ids), max_seq_length=proto.seqlen,
                                           shuffle_calibration_samples=False))
    run_llmcompressor.blocks = block_sparsities(model)
    linears = [m for n, m in model.model.layers.named_modules() if hasattr(m, "weight") and m.weight.dim() == 2]
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    total = sum(m.weight.numel() for m in linears)
    run_llmcompressor.lm_head_sparsity = float((model.lm_head.weight == 0).float().mean())
    return proto.ppl(model), seconds, zeros / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="magnitude,wanda,sparsegpt",
                    help="our methods, comma-separated; a +int4 suffix adds joint 4-bit quantization")
    ap.add_argument("--settings", default="0.5,0.7,2:4", help="sparsities and/or N:M patterns")
    ap.add_argument("--runs", default="", help="explicit list method@setting (llmc-<method> for llm-compressor); "
                                              "overrides --methods/--settings")
    ap.add_argument("--no-llmcompressor", action="store_true", help="skip the llm-compressor anchor rows")
    ap.add_argument("--llmc-ignore", default="re:.*lm_head", help="llm-compressor ignore entry for lm_head")
    ap.add_argument("--nsamples", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0,
                    help="calibration draw (0 is the fixed protocol's; others measure how much a row moves with it)")
    ap.add_argument("--batch-size", type=int, default=8,
                    help="calibration samples per forward pass in our driver (llm-compressor's rows run 1 at a time)")
    ap.add_argument("--owl-m", type=float, default=5.0, help="OWL outlier threshold M (both implementations)")
    ap.add_argument("--owl-lambda", type=float, default=0.08, help="OWL spread lambda (both implementations)")
    ap.add_argument("--dense-target", type=float, default=0.3, help="α of the +dense rows (ours)")
    ap.add_argument("--split", default="test", choices=("test", "valid"),
                    help="WikiText-2 split to evaluate: valid for choosing knobs, test for the tables")
    ap.add_argument("--out", default="quality.json")
    args = ap.parse_args()
    OWL.update(m=args.owl_m, **{"lambda": args.owl_lambda})
    DENSE_TARGET.update(alpha=args.dense_target)
    logging.basicConfig(level=logging.WARNING)

    proto = Protocol(args.nsamples, args.seqlen, args.windows, args.seed, args.split)
    dense_ppl = proto.ppl(proto.fresh_model())
    rows = [{"setting": "dense", "impl": "-", "method": "dense", "ppl": dense_ppl, "seconds": 0.0, "sparsity": 0.0}]
    print(f"dense ppl {dense_ppl:.3f}", flush=True)
    if args.runs:  # explicit order, e.g. alps@0.7,sparsegpt@0.7,llmc-sparsegpt@2:4
        plan = []
        for item in args.runs.split(","):
            method, _, setting = item.partition("@")
            impl = "llm-compressor" if method.startswith("llmc-") else "topiary"
            plan.append((setting, impl, method.removeprefix("llmc-")))
    else:
        runs = [("topiary", m) for m in args.methods.split(",") if m]
        if not args.no_llmcompressor:
            runs += [("llm-compressor", "sparsegpt"), ("llm-compressor", "wanda")]
        plan = [(setting, impl, method) for setting in args.settings.split(",") for impl, method in runs]
    for setting, impl, method in plan:
        if impl == "topiary":
            ppl, seconds, sparsity = run_ours(proto, method, setting, args.batch_size)
            head, blocks = float((proto.model.lm_head.weight == 0).float().mean()), run_ours.blocks
        else:
            ppl, seconds, sparsity = run_llmcompressor(proto, method, setting, args.llmc_ignore)
            head, blocks = run_llmcompressor.lm_head_sparsity, run_llmcompressor.blocks
        rows.append({"setting": setting, "impl": impl, "method": method, "ppl": ppl, "seconds": seconds,
                     "sparsity": sparsity, "lm_head_sparsity": head, "block_sparsity": blocks,
                     "batch_size": args.batch_size if impl == "topiary" else 1,
                     **({"owl": dict(OWL)} if "owl" in method else {}),
                     **({"dense_target": DENSE_TARGET["alpha"]} if "+dense" in method else {})})
        print(f"{setting:>5} {impl:<15} {method:<10} ppl {ppl:10.3f}  {seconds:7.1f}s  sparsity {sparsity:.4f}", flush=True)
        write_json(args.out, {"protocol": proto.describe(), "rows": rows})  # keep partial results

    # ratio of our perplexity to llm-compressor's for the same method and setting
    anchor = {(r["setting"], r["method"]): r for r in rows if r["impl"] == "llm-compressor"}
    table = []
    for r in rows:
        ref = anchor.get((r["setting"], r["method"])) if r["impl"] == "topiary" else None
        r["ppl_ratio_vs_llmcompressor"] = r["ppl"] / ref["ppl"] if ref else None
        r["time_ratio_vs_llmcompressor"] = r["seconds"] / ref["seconds"] if ref else None
        table.append([r["setting"], r["impl"], r["method"], f"{r['ppl']:.2f}", f"{r['seconds']:.0f}", f"{r['sparsity']:.4f}",
                      f"{r['ppl_ratio_vs_llmcompressor']:.3f}" if ref else "", f"{r['time_ratio_vs_llmcompressor']:.2f}" if ref else ""])
    print()
    print_table(["setting", "impl", "method", "wikitext2 ppl", "prune s", "sparsity", "ppl / llmc", "time / llmc"], table)
    path = write_json(args.out, {"protocol": proto.describe(), "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
