"""Least-squares refit of the kept weights on a fixed support by batched conjugate gradient.

Solves, for every output column j of B (n×m) at once, Ĥ[S_j,S_j] b = G[S_j, j] (ALPS paper,
Algorithm 2; algorithms.md §2.5). Ĥ has unit diagonal, so plain CG here *is* Jacobi-
preconditioned CG of the original problem. Unlike the reference code, the stopping test uses the
residual on the support only (the off-support residual never vanishes), so CG stops when it has
actually converged instead of always running its cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RefitResult:
    B: torch.Tensor
    iterations: int
    converged: bool
    residual: float  # max over columns of ‖r_S‖ / ‖G_S‖ at exit


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num/den per column, 0 where den is 0 (a converged or empty column takes no step)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


def cg_refit(Hn: torch.Tensor, G: torch.Tensor, B: torch.Tensor, keep: torch.Tensor,
             rtol: float = 1e-4, max_iter: int = 100) -> RefitResult:
    """Batched CG on the support `keep` (n×m bool), warm-started from B; one GEMM per iteration."""
    maskf = keep.to(G.dtype)
    X = B * maskf
    R = (G - Hn @ X) * maskf  # residual on the support only
    target = torch.linalg.vector_norm(G * maskf, dim=0)  # [m]
    P = R.clone()
    rr = (R * R).sum(dim=0)  # [m]
    iterations = 0
    rel = torch.sqrt(rr) / target.clamp_min(1e-30)
    while iterations < max_iter and bool((rel > rtol).any()):
        AP = (Hn @ P) * maskf
        alpha = _safe_div(rr, (P * AP).sum(dim=0))
        X.add_(P * alpha)
        R.sub_(AP * alpha)
        rr_new = (R * R).sum(dim=0)
        P = R + P * _safe_div(rr_new, rr)
        rr = rr_new
        iterations += 1
        rel = torch.sqrt(rr) / target.clamp_min(1e-30)
    return RefitResult(X, iterations, bool((rel <= rtol).all()), float(rel.max()) if rel.numel() else 0.0)
