"""Exact mask selection. Every helper returns a boolean *keep* mask (True = weight stays).

Selection is by sorted index, never by a `<= threshold` test, so ties cannot over-prune: the
number of zeros in each comparison group is exactly the rounded target.
"""

from __future__ import annotations

import torch

from .errors import SpecError
from .spec import Pattern


def n_pruned(count: int, sparsity: float) -> int:
    """Weights to zero in a comparison group of `count` weights (rounded to the nearest)."""
    return min(count, int(round(sparsity * count)))


def keep_top_k(score: torch.Tensor, k: int) -> torch.Tensor:
    """Keep mask with exactly the k highest scores of the whole tensor, found by threshold
    (`kthvalue`, linear time) instead of a sort or a huge `topk`. Ties at the threshold are
    filled in index order, so the count is exact and the result deterministic."""
    flat = score.reshape(-1)  # [numel]
    numel = flat.numel()
    if k >= numel:
        return torch.ones_like(score, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(score, dtype=torch.bool)
    threshold = torch.kthvalue(flat, numel - k).values  # the (numel-k)-th smallest is the largest dropped value
    keep = flat > threshold
    missing = k - int(keep.sum())
    if missing > 0:
        ties = torch.nonzero(flat == threshold).flatten()[:missing]
        keep[ties] = True
    return keep.view(score.shape)


def prune_lowest(score: torch.Tensor, k: int) -> torch.Tensor:
    """Keep mask that zeros exactly the k lowest scores of the whole tensor (one comparison group)."""
    return keep_top_k(score, score.numel() - k)


def prune_lowest_per_row(score: torch.Tensor, k: int) -> torch.Tensor:
    """Keep mask that zeros exactly the k lowest scores in every row (Wanda's comparison group)."""
    keep = torch.ones_like(score, dtype=torch.bool)
    if k > 0:
        order = torch.sort(score, dim=1, stable=True).indices  # [rows, cols]
        keep.scatter_(1, order[:, :k], False)
    return keep


def nm_keep(score: torch.Tensor, n_keep: int, m: int) -> torch.Tensor:
    """Keep mask with the n_keep highest scores of every group of m consecutive columns per row."""
    rows, cols = score.shape
    if cols % m:
        raise SpecError(f"N:M needs the input dimension ({cols}) to be a multiple of M={m}", "pattern")
    groups = score.reshape(rows, cols // m, m)  # [rows, groups, m]
    top = torch.topk(groups, n_keep, dim=2).indices  # [rows, groups, n_keep]
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, top, True)
    return keep.reshape(rows, cols)  # back to [rows, cols]


def select(score: torch.Tensor, pattern: Pattern, sparsity: float, group: str) -> torch.Tensor:
    """Keep mask for `score` under `pattern`. For unstructured sparsity `group` is the comparison
    group: "layer" (one top-k over the whole matrix) or "row" (per output row)."""
    if pattern.is_nm:
        return nm_keep(score, pattern.n_keep, pattern.m)
    if group == "row":
        return prune_lowest_per_row(score, n_pruned(score.shape[1], sparsity))
    if group == "layer":
        return prune_lowest(score, n_pruned(score.numel(), sparsity))
    raise ValueError(f"unknown comparison group {group!r}")


def is_valid_nm(keep: torch.Tensor, n_keep: int, m: int) -> bool:
    """True when every group of m consecutive inputs in every row keeps at most n_keep weights."""
    rows, cols = keep.shape
    per_group = keep.reshape(rows, cols // m, m).sum(dim=2)  # [rows, groups]
    return bool((per_group <= n_keep).all())
