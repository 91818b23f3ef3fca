"""The seam every pruning method plugs into.

A method is one pure function `prune_layer(W, stats, spec, options) -> LayerResult`. It knows
nothing about models, data, devices or storage: W is an m×n float32 tensor already on the
compute device, `stats` the statistics of the layer's input (see `pruning_core.stats`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..spec import MethodSpec


@dataclass
class LayerResult:
    """New weights (m×n, zeros where pruned), the keep mask, and method-specific diagnostics."""

    weight: torch.Tensor
    mask: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    bias_delta: torch.Tensor | None = None  # [m], added to the layer's bias when it has one
    grid: Any | None = None  # quant.Grid of a jointly quantized layer: its scales and zero points


@dataclass(frozen=True)
class Method:
    """Registry entry: a method's declaration (pruning_core.spec.methods: name, options, the
    statistics it reads) and the function implementing it, which receives the declared options
    as their generated dataclass."""

    declared: MethodSpec
    prune_layer: Callable[..., LayerResult]
    # whether, for unstructured sparsity, the method zeros the same count in every row (with these
    # options): then a layer's zero count moves in steps of its row count (spec.profile.plan)
    per_row: Callable[[Any], bool] = lambda options: False

    @property
    def name(self) -> str:
        return self.declared.name

    @property
    def options(self) -> type:
        return self.declared.options_class

    @property
    def stats(self) -> str:
        return self.declared.stats

    @property
    def supports_quant(self) -> bool:
        return self.declared.supports_quant
