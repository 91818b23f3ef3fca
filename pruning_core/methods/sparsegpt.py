"""SparseGPT (algorithms.md §3.3): OBS-style column sweep with the upper Cholesky factor of H⁻¹.

Mask selection happens at the start of each block of `blocksize` columns (unstructured: the
lowest W²/U_jj² among all m·B entries of the block) or every M columns (N:M: per row and group),
always on the current, already updated weights. Pruned columns push their error onto the columns
to their right through U.
"""

from __future__ import annotations

import torch

from .. import masks
from ..obs import inverse_factor, sweep
from ..quant import Grid
from ..spec import DECLARED
from .base import LayerResult, Method

SparseGPTOptions = DECLARED["sparsegpt"].options_class  # declared in pruning_core/spec/methods.py


def prune_layer(W: torch.Tensor, stats, spec, options: SparseGPTOptions) -> LayerResult:
    """Algorithm of §3.3 with exact per-block counts (sorted selection instead of `<= thresh`)."""
    U, dead = stats.cached(f"sparsegpt:{options.percdamp}", lambda: inverse_factor(stats.H, options.percdamp))
    W = W.clone()
    W[:, dead] = 0.0  # inputs that never fire: their weights cannot matter to the objective
    n = W.shape[1]
    pattern = spec.pattern
    block = options.blocksize
    if pattern.is_nm:
        if n % pattern.m:
            masks.nm_keep(W, pattern.n_keep, pattern.m)  # raises the clear SpecError
        block = max(pattern.m, block // pattern.m * pattern.m)  # groups must not straddle blocks

    def choose(W1, U1, i1, i2):
        if pattern.is_nm:
            return torch.ones_like(W1, dtype=torch.bool)
        score = W1**2 / torch.diagonal(U1).unsqueeze(0) ** 2  # [m, B]
        return masks.prune_lowest(score, masks.n_pruned(score.numel(), spec.sparsity))

    grid = Grid(W, spec.quant) if spec.quant else None  # fixed once from the dense weights
    W, keep = sweep(W, U, block, choose, pattern if pattern.is_nm else None, grid)
    info = {"dead_inputs": int(dead.sum())}
    if grid is not None:
        info["bits_per_weight"] = grid.bits_per_weight(int(keep.sum()), keep.numel())
    return LayerResult(weight=W, mask=keep, info=info, grid=grid)


METHOD = Method(DECLARED["sparsegpt"], prune_layer)
