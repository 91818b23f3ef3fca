"""Asymmetric per-output-channel (optionally per-group) integer grids that contain zero, for
joint sparsification + quantization (algorithms.md §3.3 and §4.7 A13).

The grid of each row (or row × group of columns) is fixed once from the dense weights: its range
is forced to include 0 and the zero point is an integer, so a pruned weight (0) is exactly a grid
point and stays 0 after quantization.
"""

from __future__ import annotations

import math

import torch

from .spec import QuantSpec  # the job spec owns it; re-exported for the solvers and library users


class Grid:
    """Per-row (m×G groups) scale and integer zero point, built from the dense weights W (m×n)."""

    def __init__(self, W: torch.Tensor, spec: QuantSpec):
        m, n = W.shape
        self.spec = spec
        self.group = spec.group_size or n
        self.maxq = 2**spec.bits - 1
        groups = math.ceil(n / self.group)
        pad = groups * self.group - n
        Wp = torch.nn.functional.pad(W, (0, pad)).view(m, groups, self.group)  # [m, G, group]
        lo = Wp.amin(dim=2).clamp(max=0.0)  # range forced to contain 0
        hi = Wp.amax(dim=2).clamp(min=0.0)
        scale = (hi - lo) / self.maxq
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero group: any scale
        self.scale = scale  # [m, G]
        self.zero = torch.round(-lo / scale)  # [m, G], integer: q = zero encodes exactly 0

    def _expand(self, t: torch.Tensor, n: int) -> torch.Tensor:
        return t.repeat_interleave(self.group, dim=1)[:, :n]  # [m, n]

    def quantize(self, W: torch.Tensor) -> torch.Tensor:
        """Round W (m×n) to the nearest grid point of its row/group (dequantized values)."""
        n = W.shape[1]
        scale, zero = self._expand(self.scale, n), self._expand(self.zero, n)
        q = torch.clamp(torch.round(W / scale) + zero, 0, self.maxq)
        return (q - zero) * scale

    def quantize_column(self, w: torch.Tensor, j: int) -> torch.Tensor:
        """Round column j (length m) to its grid, for column-by-column sweeps (SparseGPT)."""
        g = j // self.group
        scale, zero = self.scale[:, g], self.zero[:, g]
        q = torch.clamp(torch.round(w / scale) + zero, 0, self.maxq)
        return (q - zero) * scale

    def bits_per_weight(self, kept: int, total: int) -> float:
        """Storage of the values: `bits` per kept weight plus an fp16 scale and an 8-bit zero
        point per group, spread over all `total` weights (the mask is counted separately)."""
        return (self.spec.bits * kept + 24 * self.scale.numel()) / max(total, 1)


def mask_bits_per_weight(pattern) -> float:
    """Bits per weight to store the sparsity pattern: a bitmask (1) for unstructured sparsity,
    log2(C(M, N)) per group of M for N:M (2:4 -> 0.65)."""
    if pattern.is_nm:
        return math.log2(math.comb(pattern.m, pattern.n_keep)) / pattern.m
    return 1.0
