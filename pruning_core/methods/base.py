"""The seam every pruning method plugs into.

A method is one pure function `prune_layer(W, stats, spec, options) -> LayerResult`. It knows
nothing about models, data, devices or storage: W is an m×n float32 tensor already on the
compute device, `stats` the statistics of the layer's input (see `pruning_core.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch


@dataclass
class LayerResult:
    """New weights (m×n, zeros where pruned), the keep mask, and method-specific diagnostics."""

    weight: torch.Tensor
    mask: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    bias_delta: Optional[torch.Tensor] = None  # [m], added to the layer's bias when it has one


@dataclass(frozen=True)
class Method:
    """Registry entry. `needs_hessian` tells the driver whether the method reads full H or only
    its diagonal (both come from the same accumulator; the flag is informational for cost
    estimates). `options` is the dataclass of the method's tunables with their defaults."""

    name: str
    prune_layer: Callable[..., LayerResult]
    options: type
    needs_hessian: bool
    summary: str
    supports_quant: bool = False  # honours PruneSpec.quant (joint sparsify + quantize)
