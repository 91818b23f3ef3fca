"""Wanda (algorithms.md §3.2): score |W_ij|·‖X_j‖, prune the lowest per output row (or per N:M
group). No weight update."""

from __future__ import annotations

import torch

from .. import masks
from ..spec import DECLARED
from .base import LayerResult, Method

WandaOptions = DECLARED["wanda"].options_class  # declared in pruning_core/spec/methods.py


def prune_layer(W: torch.Tensor, stats, spec, options: WandaOptions) -> LayerResult:
    """S_ij = |W_ij|·sqrt(r_j) with r_j = ‖X_j‖²/N; comparison group = each output row."""
    score = W.abs() * torch.sqrt(stats.col_sqnorm).unsqueeze(0)  # [m, n]
    keep = masks.select(score, spec.pattern, spec.sparsity, group="row")
    return LayerResult(weight=W * keep, mask=keep)


METHOD = Method(DECLARED["wanda"], prune_layer, per_row=lambda options: True)
