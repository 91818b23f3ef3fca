"""The dense-output reconstruction target (spec field `dense_target`, α ∈ [0, 1]).

The block-sequential driver reconstructs each layer's output on the inputs the already pruned
blocks produce, X_p, against the dense weights on those same inputs: min ‖W X_p − Ŵ X_p‖ (every
repository in algorithms.md §1.1). The error of earlier blocks is then never corrected. With α > 0
part of the target is the dense *model's* output W X_d instead, on inputs X_d that a second, never
pruned stream of activations carries through the blocks:

    min_Ŵ  α ‖W X_d − Ŵ X_p‖² + (1 − α) ‖W X_p − Ŵ X_p‖²  (+ the method's ridge δ‖Ŵ − W‖²)

Both terms share the Hessian H = X_p X_pᵀ, so the objective equals ‖(W_α − Ŵ) X_p‖² up to a
constant, with W_α = W + α (W′ − W) and W′ = W (C + δI)ᵀ (H + δI)⁻¹, C = X_p X_dᵀ. Any method that
reads H (SparseGPT, ALPS, PGZ) then prunes W_α exactly as it pruned W. The ridge is added to C as
well as H so that identical inputs (block 0) give W′ = W.
"""

from __future__ import annotations

import torch
from torch import nn


class CrossHooks:
    """Forward hooks that accumulate C = Σ_t x_p,t x_d,tᵀ for each distinct input of a block's
    target linears. Per batch the block runs twice: first on the dense stream (`recording`: the
    inputs are held), then on the pruned one (each input is multiplied with its held dense twin).
    Linears fed the same tensor (q/k/v; gate/up) share one sum, found by tensor identity as the
    statistics hooks do."""

    def __init__(self, linears: dict[str, nn.Linear]):
        self.recording = True
        self.leader: dict[str, str] = {}
        self.sum: dict[str, torch.Tensor] = {}
        self.tokens = 0
        self._dense: dict[str, torch.Tensor] = {}
        self._seen: dict[int, str] = {}
        self._handles = [lin.register_forward_hook(self._hook(name)) for name, lin in linears.items()]

    def _hook(self, name: str):
        def hook(module, args, output):
            x = args[0]
            if self.recording:
                self._dense[name] = x
                return
            if name not in self.leader:
                self.leader[name] = self._seen.setdefault(id(x), name)
            if self.leader[name] != name:
                return
            xp = x.reshape(-1, x.shape[-1]).to(torch.float32)  # [tokens, n]
            xd = self._dense[name].reshape(-1, x.shape[-1]).to(torch.float32)  # [tokens, n]
            if name not in self.sum:
                self.sum[name] = torch.zeros(xp.shape[1], xp.shape[1], dtype=torch.float32, device=xp.device)
            self.sum[name].addmm_(xp.T, xd)
            if name == next(iter(self.leader)):
                self.tokens += xp.shape[0]
        return hook

    def end_batch(self) -> None:
        self._dense.clear()
        self._seen.clear()

    def cross(self) -> dict[str, torch.Tensor]:
        """Every linear's C / tokens (the statistics hooks' H is normalized the same way)."""
        count = max(self.tokens, 1)
        return {name: self.sum[leader] / count for name, leader in self.leader.items()}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def shifted_weight(W: torch.Tensor, H: torch.Tensor, C: torch.Tensor | None, alpha: float,
                   percdamp: float) -> torch.Tensor:
    """W_α = W + α (W′ − W), W′ = W (C + δI)ᵀ (H + δI)⁻¹ with δ = percdamp · mean diag(H);
    W [m, n], H and C [n, n] normalized alike. Solved in float64; returns W's dtype."""
    if C is None or alpha == 0:
        return W
    Hd, Cd = H.double(), C.double()
    ridge = percdamp * Hd.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(Hd.shape[0], dtype=Hd.dtype, device=Hd.device)
    # (H + δI) W′ᵀ = (C + δI) Wᵀ: [n, n] @ [n, m] -> W′ᵀ [n, m]
    Wt = torch.linalg.solve(Hd + ridge * eye, (Cd + ridge * eye) @ W.double().T)
    return (W.double() + alpha * (Wt.T - W.double())).to(W.dtype)
