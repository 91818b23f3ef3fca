"""Numerical helpers shared by the solvers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Full fp32 matmuls inside a solver, restoring the caller's setting afterwards (we never flip
    the global switch at import time)."""
    old_mm, old_cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_mm
        torch.backends.cudnn.allow_tf32 = old_cudnn


def add_ridge(H: torch.Tensor, percdamp: float) -> torch.Tensor:
    """H + λI with λ = percdamp·mean(diag H): the damping every method applies (§1.2). When no
    input ever fired (mean diag 0) λ = 1, so the result stays positive definite."""
    lam = percdamp * torch.mean(torch.diagonal(H))
    if lam <= 0:
        lam = torch.ones((), dtype=H.dtype, device=H.device)
    return H + lam * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)


def unit_diagonal(H: torch.Tensor, eps: float = 1e-16) -> tuple[torch.Tensor, torch.Tensor]:
    """D⁻¹ H D⁻¹ with D = diag(sqrt(H_jj + eps)): the unit-diagonal scaling ALPS and PGZ solve in.
    Returns (scaled H, d)."""
    d = torch.sqrt(torch.diagonal(H) + eps)
    return H / d.unsqueeze(1) / d.unsqueeze(0), d


def damped(H: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """add_ridge after giving dead inputs (H_jj = 0) H_jj = 1 (§1.2). Returns the damped copy
    and the boolean mask of dead inputs."""
    H = H.clone()
    dead = torch.diagonal(H) == 0
    H[dead, dead] = 1.0
    return add_ridge(H, percdamp), dead


def cholesky_retry(H: torch.Tensor, upper: bool = False, tries: int = 6) -> torch.Tensor:
    """Cholesky factor of H; if fp32 round-off makes H look indefinite, add 10× more ridge per try."""
    eps = 1e-6 * torch.mean(torch.diagonal(H)).clamp_min(1e-12)
    for attempt in range(tries):
        factor, info = torch.linalg.cholesky_ex(H, upper=upper)
        if int(info) == 0:
            return factor
        H = H + eps * (10**attempt) * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    raise torch.linalg.LinAlgError("matrix is not positive definite even after extra damping")
