"""The driver's side of sparsity profiles (the rules and the budget are spec.profile's): the
layer slots of a model, OWL's outlier ratios measured on the dense model, and the per-layer
targets with the summary the report shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .blocks import BlockInputs, target_linears
from .spec import LayerSlot, PruneSpec
from .spec.profile import fixed_by_rules, plan


def layer_slots(block_path: str, blocks: nn.ModuleList, spec: PruneSpec, per_row: bool,
                per_layer: bool = False) -> list[LayerSlot]:
    """Every pruned layer in driver order. Works on a streamed model's meta skeleton: only the
    weights' shapes are read. `per_layer` (bench/owl_select.py only, with owl_ratios' own) numbers
    each layer as its own block, so the planner offsets it by its own outlier ratio."""
    slots = []
    for index, block in enumerate(blocks):
        prefix = f"{block_path}.{index}"
        for name, lin in target_linears(block, prefix, spec.ignore).items():
            rows, cols = lin.weight.shape
            slots.append(LayerSlot(f"{prefix}.{name}", rows, cols, len(slots) if per_layer else index,
                                   rows if per_row else 1))
    return slots


def outlier_ratio(weights: list[torch.Tensor], norms: list[torch.Tensor], m: float) -> float:
    """Percent of a block's scores |W_ij|·‖x_j‖ (all its pruned layers together) above m times
    their mean: OWL's layerwise outlier distribution. Two passes (mean, then count) instead of
    concatenating the scores, which for a 70B block would be gigabytes."""
    def scores(W: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        return W.abs().to(torch.float32) * norm.to(torch.float32).unsqueeze(0)  # [out, in] * [1, in]

    pairs = list(zip(weights, norms))
    total = sum(W.numel() for W in weights)
    mean = sum(float(scores(W, sq).sum(dtype=torch.float64)) for W, sq in pairs) / total
    above = sum(int((scores(W, sq) > m * mean).sum()) for W, sq in pairs)
    return 100.0 * above / total


# how each statistic kind gives ‖x_j‖ (the stats module owns the accumulators)
OWL_NORMS: dict[str, Callable] = {
    "sample_norms": lambda stats: stats.sample_norm,  # mean over samples of the per-sample norm
    "norms": lambda stats: stats.col_sqnorm.sqrt(),  # root mean square over all tokens
}


def owl_ratios(source, spec: PruneSpec, inputs: BlockInputs, device, store, gather: Callable,
               run_block: Callable, statistic: str = "sample_norms", per_layer: bool = False) -> list[float]:
    """One dense pass over the blocks: each block's outlier ratio from its input norms, and its
    dense output as the next block's input (as the OWL paper and llm-compressor measure it).
    ‖x_j‖ is by default the mean over calibration samples of feature j's norm in each sample, as
    llm-compressor weighs it, rather than the norm over all tokens at once (the OWL paper's code,
    `statistic="norms"`, kept for bench/owl_select.py): the same M and λ then give
    llm-compressor's allocation, and the knobs and this statistic were chosen together on
    validation (README, "Sparsity profiles"). Consumes `inputs` (the caller captures block 0's
    inputs again for pruning). `per_layer` (bench/owl_select.py only) gives one ratio per pruned
    layer, in driver order, instead of one per block."""
    ratios = []
    for index in range(len(source.blocks)):
        block = source.open(index, device)
        try:
            linears = target_linears(block, f"{source.block_path}.{index}", spec.ignore)
            stats = gather(block, linears, inputs, device, store, statistic)
            weights = [lin.weight for lin in linears.values()]
            norms = [OWL_NORMS[statistic](stats[name]) for name in linears]
            groups = [([w], [n]) for w, n in zip(weights, norms)] if per_layer else [(weights, norms)]
            ratios += [outlier_ratio(w, n, spec.profile.owl_m) for w, n in groups]
            inputs.hidden = run_block(block, inputs, device, store)
        finally:
            source.close(index)
    return ratios


def layer_targets(slots: list[LayerSlot], spec: PruneSpec,
                  ratios: list[float] | None) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """(name -> target sparsity, or None when every layer takes spec.sparsity; the profile's
    summary for the report). With an N:M pattern a layer is either dense (a rule) or patterned."""
    profile = spec.profile
    summary: dict[str, Any] = {**profile.to_dict(), "target": spec.sparsity}
    if profile.is_uniform:
        return None, summary
    if spec.pattern.is_nm:
        fixed = fixed_by_rules(slots, profile)
        return {s.name: fixed.get(s.name, spec.sparsity) for s in slots}, summary
    targets = plan(slots, spec.sparsity, profile, ratios)
    if ratios is not None:
        summary["block_outlier_ratios"] = ratios
    return targets, summary
