"""Per-input statistics shared by the layers that read the same input.

One `GramAccumulator` per distinct layer input (q/k/v share one; gate/up share one) sums
H = Σ x xᵀ over calibration tokens. `LayerStats` is the finished, token-averaged view handed to a
method, with a small cache so that layers sharing an input also share factorizations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch


class GramAccumulator:
    """Running H = Σ_t x_t x_tᵀ in float32 on the compute device."""

    def __init__(self, n: int, device: torch.device):
        self.sum = torch.zeros(n, n, dtype=torch.float32, device=device)
        self.first = torch.zeros(n, dtype=torch.float32, device=device)  # Σ x, for centering
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).to(torch.float32)  # [tokens, n]
        self.sum.addmm_(x.T, x)
        self.first += x.sum(dim=0)
        self.tokens += x.shape[0]

    def finish(self) -> "LayerStats":
        count = max(self.tokens, 1)
        return LayerStats(H=self.sum / count, tokens=self.tokens, mean=self.first / count)


@dataclass
class LayerStats:
    """H = X Xᵀ / N (n×n, fp32). Scale does not matter to any method; averaging keeps fp32 sane."""

    H: torch.Tensor
    tokens: int
    mean: Optional[torch.Tensor] = None  # [n] per-feature token mean
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def col_sqnorm(self) -> torch.Tensor:
        """‖X_j‖²/N for each input feature j (the Wanda statistic r_j)."""
        return torch.diagonal(self.H)

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """Compute once per shared input: e.g. SparseGPT's factor or ALPS's eigendecomposition."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]


def relative_error(W: torch.Tensor, W_hat: torch.Tensor, H: torch.Tensor, dtype=torch.float64) -> float:
    """‖(W−Ŵ)X‖²_F / ‖WX‖²_F = tr(ΔW H ΔWᵀ) / tr(W H Wᵀ). ΔW is formed explicitly, so float32
    is accurate enough for reporting; tests use the float64 default to compare near-equal errors."""
    W64, H64 = W.to(dtype), H.to(dtype)
    dW = W64 - W_hat.to(dtype)
    num = ((dW @ H64) * dW).sum()
    den = ((W64 @ H64) * W64).sum()
    return float(num / den) if den > 0 else 0.0
