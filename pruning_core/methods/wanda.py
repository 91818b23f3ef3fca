"""Wanda (algorithms.md §3.2): score |W_ij|·‖X_j‖, prune the lowest per output row (or per N:M
group). No weight update."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import masks
from .base import LayerResult, Method


@dataclass(frozen=True)
class WandaOptions:
    pass


def prune_layer(W: torch.Tensor, stats, spec, options: WandaOptions) -> LayerResult:
    """S_ij = |W_ij|·sqrt(r_j) with r_j = ‖X_j‖²/N; comparison group = each output row."""
    score = W.abs() * torch.sqrt(stats.col_sqnorm).unsqueeze(0)  # [m, n]
    keep = masks.select(score, spec.pattern, spec.sparsity, group="row")
    return LayerResult(weight=W * keep, mask=keep)


METHOD = Method("wanda", prune_layer, WandaOptions, needs_hessian=False,
                summary="|W|·‖X‖ score per output row; no update")
