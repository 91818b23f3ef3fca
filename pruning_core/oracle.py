"""Reference solvers used by tests and benchmarks as independent yardsticks (slow, exact)."""

from __future__ import annotations

import torch


def exact_refit(W: torch.Tensor, H: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The least-squares optimum on a fixed support: for each row i with support S,
    ŵ_S = H_SS⁻¹ (H w_i)_S and ŵ = 0 elsewhere; minimizes (ŵ−w)ᵀH(ŵ−w). float64, row by row."""
    W64, H64 = W.double(), H.double()
    target = W64 @ H64  # [m, n]; row i is (H w_i)ᵀ
    out = torch.zeros_like(W64)
    for i in range(W.shape[0]):
        support = torch.nonzero(keep[i]).flatten()
        if support.numel():
            out[i, support] = torch.linalg.solve(H64[support][:, support], target[i, support])
    return out.to(W.dtype)
