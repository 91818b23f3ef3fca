"""Per-input statistics shared by the layers that read the same input.

One accumulator per distinct layer input (q/k/v share one; gate/up share one) sums what the
method declared it reads (spec.methods): H = Σ x xᵀ (`GramAccumulator`, "gram") or only the
per-feature Σ x_j² (`NormAccumulator`, "norms", n numbers instead of n²). OWL's outlier pass reads
a third kind, the mean over calibration samples of each feature's per-sample norm
(`SampleNormAccumulator`, "sample_norms"). `LayerStats` is the finished, token-averaged view handed
to a method, with a small cache so that layers sharing an input also share factorizations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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

    def finish(self) -> LayerStats:
        count = max(self.tokens, 1)
        return LayerStats(H=self.sum / count, tokens=self.tokens, mean=self.first / count)


class NormAccumulator:
    """Running Σ_t x_t² per input feature (the diagonal of H only), in float32."""

    def __init__(self, n: int, device: torch.device):
        self.sqsum = torch.zeros(n, dtype=torch.float32, device=device)
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).to(torch.float32)  # [tokens, n]
        self.sqsum += (x * x).sum(dim=0)
        self.tokens += x.shape[0]

    def finish(self) -> LayerStats:
        return LayerStats(H=None, tokens=self.tokens, sqnorm=self.sqsum / max(self.tokens, 1))


class SampleNormAccumulator:
    """Running Σ_s ‖x_{s,j}‖ over calibration samples s of each feature's norm across that sample's
    tokens: llm-compressor's OWL statistic, so that the same M and λ give its per-block sparsities."""

    def __init__(self, n: int, device: torch.device):
        self.norm_sum = torch.zeros(n, dtype=torch.float64, device=device)
        self.samples = 0
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-2], x.shape[-1]).to(torch.float32)  # [samples, tokens, n]
        per_sample = x.pow(2).sum(dim=1).sqrt()  # [samples, n]
        self.norm_sum += per_sample.sum(dim=0, dtype=torch.float64)
        self.samples += per_sample.shape[0]
        self.tokens += x.shape[0] * x.shape[1]

    def finish(self) -> LayerStats:
        return LayerStats(H=None, tokens=self.tokens,
                          sample_norm=(self.norm_sum / max(self.samples, 1)).to(torch.float32))


ACCUMULATORS = {"gram": GramAccumulator, "norms": NormAccumulator, "sample_norms": SampleNormAccumulator}


@dataclass
class LayerStats:
    """H = X Xᵀ / N (n×n, fp32) for "gram" methods; only its diagonal (`sqnorm`) for "norms".
    Scale does not matter to any method; averaging keeps fp32 sane."""

    H: torch.Tensor | None
    tokens: int
    mean: torch.Tensor | None = None  # [n] per-feature token mean
    sqnorm: torch.Tensor | None = None  # [n] diag(H) when H itself was not accumulated
    sample_norm: torch.Tensor | None = None  # [n] mean per-sample feature norm ("sample_norms")
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def col_sqnorm(self) -> torch.Tensor:
        """‖X_j‖²/N for each input feature j (the Wanda statistic r_j)."""
        return torch.diagonal(self.H) if self.H is not None else self.sqnorm

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


def layer_error(W: torch.Tensor, W_hat: torch.Tensor, stats: LayerStats | None) -> tuple[float | None, str]:
    """The reported reconstruction error and what it is measured with: the exact relative error
    with H ("H"), its diagonal estimate Σ ΔW²·r / Σ W²·r when only the norms r were gathered
    ("diag(H)"), or nothing when the method read no data."""
    if stats is None:
        return None, "none"
    if stats.H is not None:
        return relative_error(W, W_hat, stats.H, dtype=torch.float32), "H"
    r = stats.sqnorm.unsqueeze(0)  # [1, n]
    den = float(((W * W) * r).sum())
    return (float((((W - W_hat) ** 2) * r).sum()) / den if den > 0 else 0.0), "diag(H)"
