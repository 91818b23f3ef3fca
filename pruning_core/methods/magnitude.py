"""Magnitude pruning (algorithms.md §3.1): zero the smallest |W| per layer, or per N:M group.
No data and no weight update; the baseline every other method must beat."""

from __future__ import annotations

import torch

from .. import masks
from ..spec import DECLARED
from .base import LayerResult, Method

MagnitudeOptions = DECLARED["magnitude"].options_class  # declared in pruning_core/spec/methods.py


def prune_layer(W: torch.Tensor, stats, spec, options: MagnitudeOptions) -> LayerResult:
    """Keep the largest |W_ij|; the comparison group is the whole layer (§3.1)."""
    keep = masks.select(W.abs(), spec.pattern, spec.sparsity, group="layer")
    return LayerResult(weight=W * keep, mask=keep)


METHOD = Method(DECLARED["magnitude"], prune_layer)
