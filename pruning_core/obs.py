"""The OBS column sweep shared by SparseGPT (mask choice + update) and PGZ's joint quantization
(error-compensated rounding on a fixed support), algorithms.md §3.3: eliminate columns left to
right, pushing each column's error onto the columns to its right through the upper Cholesky
factor U of (H + λI)⁻¹.
"""

from __future__ import annotations

import torch

from . import masks
from .numerics import cholesky_retry, damped
from .quant import Grid


def inverse_factor(H: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper U with (H + λI)⁻¹ = UᵀU; U_jj² is the OBS denominator for left-to-right elimination."""
    H_damped, dead = damped(H, percdamp)
    L = cholesky_retry(H_damped)
    H_inv = torch.cholesky_inverse(L)
    return cholesky_retry(H_inv, upper=True), dead


def _sweep_block(W1: torch.Tensor, U1: torch.Tensor, keep1: torch.Tensor, nm, grid, i1: int) -> torch.Tensor:
    """Eliminate the columns of one block left to right (§3.3 step 3); W1 and keep1 are updated in
    place. `nm` (a Pattern, or None when the mask is already fixed) picks the N:M mask every M
    columns. With a grid, the kept value is rounded to it so the error pushed right includes the
    rounding error. Returns the m×B scaled errors E for the lazy update of later blocks."""
    d = torch.diagonal(U1)
    E1 = torch.zeros_like(W1)
    for i in range(W1.shape[1]):
        if nm is not None and i % nm.m == 0:
            score = W1[:, i : i + nm.m] ** 2 / d[i : i + nm.m] ** 2  # [m, M]
            keep1[:, i : i + nm.m] = masks.nm_keep(score, nm.n_keep, nm.m)
        w = W1[:, i]
        q = w * keep1[:, i]
        if grid is not None:
            q = grid.quantize_column(q, i1 + i)  # 0 is on the grid: pruned weights stay 0
        err = (w - q) / d[i]
        # rank-1 OBS update of the remaining columns of the block
        W1[:, i:].sub_(err.unsqueeze(1) * U1[i, i:].unsqueeze(0))
        W1[:, i] = q
        E1[:, i] = err
    return E1


def sweep(W: torch.Tensor, U: torch.Tensor, block: int, choose, nm, grid) -> tuple[torch.Tensor, torch.Tensor]:
    """The blocked column sweep. `choose(W1, U1, i1, i2)` returns the block's keep mask before the
    block is eliminated (all True when N:M picks it inside the block). Returns (W, keep)."""
    n = W.shape[1]
    keep = torch.ones_like(W, dtype=torch.bool)
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        W1 = W[:, i1:i2].clone()
        U1 = U[i1:i2, i1:i2]
        keep1 = choose(W1, U1, i1, i2)
        E1 = _sweep_block(W1, U1, keep1, nm, grid, i1)
        W[:, i1:i2] = W1
        keep[:, i1:i2] = keep1
        W[:, i2:].sub_(E1 @ U[i1:i2, i2:])  # lazy batch update of all later columns
    return W * keep, keep


def round_on_support(W: torch.Tensor, keep: torch.Tensor, stats, grid: Grid, percdamp: float = 0.01,
                     blocksize: int = 128) -> torch.Tensor:
    """Error-compensated rounding of W onto `grid` with the support `keep` held fixed: the same
    sweep with no mask choice (GPTQ/OBQ rounding). Each column's rounding error, and the value of
    every pruned weight, is pushed onto the columns to its right through U. Used by PGZ's joint
    quantization; returns exact grid values with zeros off the support."""
    U, dead = stats.cached(f"sparsegpt:{percdamp}", lambda: inverse_factor(stats.H, percdamp))
    W = W.clone()
    W[:, dead] = 0.0
    out, _ = sweep(W, U, blocksize, lambda W1, U1, i1, i2: keep[:, i1:i2].clone(), None, grid)
    return out
