"""PGZ, "pushing the modified gradient to zero" (algorithms.md §4): gradual masks chosen by the
score P1·P2, each step followed by a reconstruction that drives S(w) = 2L(w − w₀) towards 0 with
a modified Lion optimizer, optionally with joint 4-bit quantization.

Everything runs in the preprocessed space (§4.5): x̃ = x ⊘ r with r_j = sqrt(mean x_j² + ε), so
W̃ = W·diag(r), H̃ = diag(r)⁻¹ H diag(r)⁻¹ (unit-scale diagonal) and H̃ + δI = LᵀL (L upper).
Matrix form for all rows at once: S = 2(W̃ − W̃₀)Lᵀ and ∇f = 2(α·sign(S) + 2β·S)L (m×n).

Resolutions of the §4.7 ambiguities (defaults; the alternative is the named option):
  A1 d_j = L_jj of the upper factor               | order_free_diag: 1/sqrt((H̃⁻¹)_jj)
  A2 sign(0) = 0 (torch.sign)                     | —
  A3 always damp δ = 0.01·mean diag (fp32 safety) | percdamp
  A4 α = 0, β = 1: the layer objective is ‖(W−Ŵ)X‖² = ‖S‖²/4, and any ℓ1 weight moves the optimum
     off it. On real SmolLM2 layers at 50%, α = β at the typical |S| ended 5% above the
     least-squares floor of its own support (α = β in absolute units: 12%); α = 0 within 1%.
     Both are rescaled at every step start so ‖∇f‖_∞ = 1, so the sign and raw-gradient halves of
     Lion's update have comparable size on every layer; the step is relative to RMS(W̃₀) for the same reason
     (weights of different layers differ by orders of magnitude) | l1, l2, lr, absolute_lr
  A5 K = 100 iterations, stop when ‖S‖² improved < 1e-4 (relative) over 10 | iters, tol, patience
  A6 Lion state reset at each step (the mask changed, so did the problem) | carry_state
  A7 Ŝ = 0.9·new + 0.1·old across steps          | smoothing (weight of the old score)
  A8 comparison group = the whole layer (N:M: each group). Per-row masks (the paper's unit)
     cost 20–36% more error at 50% on real SmolLM2 layers: rows differ in how much they can lose,
     which is why SparseGPT and ALPS do not fix per-row sparsity either | group="row"
  A9 gradual N:M: c_t = min(M−N, round(M·s_t)) pruned per group | nm_single_step
  A10 no centering (it would drop the mean-output error) | center (+ bias compensation)
  A11 per-feature RMS, ε = 1e-8                   | eps
  A12 weight decay towards 0 as in Lion           | weight_decay
  A13 mask → quantize → reconstruct → quantize, grid from the dense weights; the rounding after a
      reconstruction is error-compensated (GPTQ-style, on the fixed support) | straight_through
  A15 calibration size is the caller's (PruneSpec.calibration)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import masks
from ..numerics import add_ridge, cholesky_retry, unit_diagonal
from ..obs import round_on_support
from ..quant import Grid
from ..spec import DECLARED
from .base import LayerResult, Method

PGZOptions = DECLARED["pgz"].options_class  # declared in pruning_core/spec/methods.py


@dataclass
class _Problem:
    """Preprocessed statistics shared by every layer reading the same input."""

    r: torch.Tensor  # [n] feature RMS
    L: torch.Tensor  # [n, n] upper, H̃ + δI = LᵀL
    Hd: torch.Tensor  # [n, n] H̃ + δI itself (the ℓ2-only loss and gradient need just this)
    colnorm: torch.Tensor  # [n] sqrt(H̃_jj) = ‖L_{:,j}‖
    d: torch.Tensor  # [n] diagonal term of P2
    mean: torch.Tensor | None  # [n] feature mean in x̃ units (centering only)


def preprocess(stats, o: PGZOptions) -> _Problem:
    """§4.5: per-feature RMS scaling (and optional centering), damping, upper Cholesky."""
    Ht, r = unit_diagonal(stats.H.double(), o.eps)  # r: the per-feature RMS of the raw inputs
    mean = None
    if o.center:
        mu = stats.mean.double() / r
        Ht = Ht - torch.outer(mu, mu)  # the covariance: the mean direction leaves the objective
        mean = mu.float()
    Ht = add_ridge(Ht, o.percdamp)
    L = cholesky_retry(Ht, upper=True)
    if o.order_free_diag:
        d = 1.0 / torch.sqrt(torch.diagonal(torch.cholesky_inverse(L, upper=True)))
    else:
        d = torch.diagonal(L)
    return _Problem(r.float(), L.float(), Ht.float(), torch.sqrt(torch.diagonal(Ht)).float(), d.float(), mean)


def schedule(sparsity: float, pattern, o: PGZOptions) -> list[float]:
    """Targets s_t = s0 + step·t (t = 1..T) clipped to the final sparsity (§4.3)."""
    if pattern.is_nm and o.nm_single_step:
        return [sparsity]
    steps = max(1, math.ceil(round((sparsity - o.s0) / o.step, 9)))
    return [min(sparsity, o.s0 + o.step * t) for t in range(1, steps + 1)]


def _grow(score: torch.Tensor, pruned: torch.Tensor, s_t: float, pattern, group: str = "row") -> torch.Tensor:
    """Masks only grow: already-pruned weights score −∞ so they stay among the lowest (§4.3)."""
    ranked = score.masked_fill(pruned, float("-inf"))
    if pattern.is_nm:
        c_t = min(pattern.m - pattern.n_keep, round(pattern.m * s_t))  # A9: pruned per group
        return pruned if c_t == 0 else ~masks.nm_keep(ranked, pattern.m - c_t, pattern.m)
    if group == "layer":
        return ~masks.prune_lowest(ranked, masks.n_pruned(score.numel(), s_t))
    return ~masks.prune_lowest_per_row(ranked, masks.n_pruned(score.shape[1], s_t))


def _loss_and_grad(D: torch.Tensor, prob: _Problem, a: float, b: float) -> tuple[float, torch.Tensor]:
    """f = α‖S‖₁ + β‖S‖² at W̃ = W̃₀ + D, with S = 2D·Lᵀ; returns (‖S‖², ∇f) (§4.4, matrix form).

    ∇f = 2(α·sign(S) + 2β·S)L. Without the ℓ1 term that is 4β·S·L = 8β·D·H̃ (H̃ + δI = LᵀL), and
    ‖S‖² = 4·tr(D H̃ Dᵀ): one GEMM with H̃ gives both, instead of one with Lᵀ and one with L."""
    if a == 0.0:
        P = D @ prob.Hd  # [m, n]
        return 4.0 * float(torch.dot(D.reshape(-1), P.reshape(-1))), P.mul_(8.0 * b)  # flat views: no D⊙P temporary
    S = 2.0 * D @ prob.L.T  # [m, n]
    return float((S * S).sum()), 2.0 * (a * torch.sign(S) + 2.0 * b * S) @ prob.L


def reconstruct(Wt, W0, pruned, prob: _Problem, o: PGZOptions, lr: float, quantize, state):
    """K iterations of the modified Lion on f(W̃) = α‖S‖₁ + β‖S‖², pruned weights held at 0.
    Returns (best iterate by ‖S‖², trace of ‖S‖², Lion state). With straight_through, S is taken
    at the quantized weights while the continuous weights are updated."""
    evaluate = (lambda W: quantize(W) * ~pruned) if o.straight_through else (lambda W: W)
    current = evaluate(Wt)
    # A4: α is in units of the typical |S| at the step start, so l1 = l2 weighs both terms alike
    # on every layer whatever its scale; then both are rescaled so that ‖∇f‖_∞ = 1 at the start
    a = o.l1 * 2.0 * float((2.0 * (current - W0) @ prob.L.T).pow(2).mean().sqrt()) if o.l1 else 0.0
    loss, g0 = _loss_and_grad(current - W0, prob, a, o.l2)
    best, best_loss = current.clone(), loss
    trace, mom = [loss], state if state is not None else torch.zeros_like(Wt)
    if loss == 0.0:  # nothing pruned yet (e.g. the first gradual step of 2:4): nothing to push
        return best, trace, mom
    gamma = 1.0 / float(g0.masked_fill(pruned, 0.0).abs().max().clamp_min(1e-30))
    a, b = gamma * a, gamma * o.l2
    G = g0.mul_(gamma)
    Wt, v = Wt.clone(), torch.empty_like(Wt)  # updated in place below: one m×n buffer per quantity
    last_gain = 0
    for k in range(o.iters):
        G.masked_fill_(pruned, 0.0)
        torch.lerp(mom, G, 1 - o.beta1, out=v)  # c = β1·m + (1−β1)·G
        mom.lerp_(G, 1 - o.beta2)  # m ← β2·m + (1−β2)·G
        v.sign_().mul_(o.mix).add_(G, alpha=2 - o.mix)  # v = ρ·sign(c) + (2−ρ)·G
        Wt.mul_(1 - o.weight_decay * lr).sub_(v, alpha=lr / (k + 1)).masked_fill_(pruned, 0.0)
        current = evaluate(Wt)
        loss, G = _loss_and_grad(current - W0, prob, a, b)
        trace.append(loss)
        if loss < best_loss * (1 - o.tol):
            last_gain = k
        if loss < best_loss:
            best, best_loss = current.clone(), loss
        if k - last_gain >= o.patience:
            break
    return best, trace, mom


def prune_layer(W: torch.Tensor, stats, spec, o: PGZOptions) -> LayerResult:
    """§4.6 for one layer: T gradual steps of (score → grow mask → quantize → reconstruct →
    quantize)."""
    key = f"pgz:{o.percdamp}:{o.eps}:{o.order_free_diag}:{o.center}"
    prob = stats.cached(key, lambda: preprocess(stats, o))
    r = prob.r.unsqueeze(0)  # [1, n]
    W0 = W * r  # [m, n]: W̃₀
    lr = o.lr if o.absolute_lr else o.lr * float(W0.pow(2).mean().sqrt().clamp_min(1e-12))
    grid = Grid(W, spec.quant) if spec.quant else None  # fixed from the dense weights, original space
    quantize = (lambda Wt: grid.quantize(Wt / r) * r) if grid else (lambda Wt: Wt)

    def settle(Wt: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
        """A13's rounding after a reconstruction, in the original space: error-compensated (each
        column's rounding error pushed onto the later ones, as SparseGPT's sweep does), so the
        work of the reconstruction is not thrown away by plain round-to-nearest."""
        return round_on_support(Wt / r, ~pruned, stats, grid)

    Wt, pruned, smooth, state = W0.clone(), torch.zeros_like(W, dtype=torch.bool), None, None
    energy = float((W0 * (W0 @ prob.Hd)).sum()) or 1.0  # tr(W̃₀ H̃ W̃₀ᵀ)
    targets = schedule(spec.sparsity, spec.pattern, o)
    total_iters, masked_loss, trace = 0, 0.0, []
    for t, s_t in enumerate(targets):
        S = 2.0 * (Wt - W0) @ prob.L.T
        score = (2.0 * prob.colnorm * Wt.abs()) * (prob.d * Wt * Wt - S * Wt).abs()  # P1·P2 (§4.2)
        smooth = score if smooth is None else (1 - o.smoothing) * score + o.smoothing * smooth
        pruned = _grow(smooth, pruned, s_t, spec.pattern, o.group)
        Wt = quantize(Wt.masked_fill(pruned, 0.0)) * ~pruned
        masked_loss, _ = _loss_and_grad(Wt - W0, prob, 0.0, 1.0)
        Wt, trace, state = reconstruct(Wt, W0, pruned, prob, o, lr, quantize, state if o.carry_state else None)
        total_iters += len(trace) - 1
        if grid is not None and t < len(targets) - 1:
            Wt = settle(Wt, pruned) * r
    # the last rounding happens in the original space so saved weights are exact grid values
    W_hat = settle(Wt, pruned) if grid is not None else Wt / r
    recon_loss, _ = _loss_and_grad(W_hat * r - W0, prob, 0.0, 1.0)
    info = {"steps": len(targets), "iterations": total_iters,
            # ‖S‖² = 4·(w−w₀)ᵀH̃(w−w₀): relative errors in the damped, scaled space
            "rel_error_masked": masked_loss / 4 / energy, "rel_error_recon": recon_loss / 4 / energy}
    if o.record_trace:
        info["trace"] = [t / 4 / energy for t in trace]
    if grid is not None:
        info["bits_per_weight"] = grid.bits_per_weight(int((~pruned).sum()), pruned.numel())
    result = LayerResult(weight=W_hat * ~pruned, mask=~pruned, info=info, grid=grid)
    if o.center:  # A10: compensate the dropped mean-output error through the bias
        result.bias_delta = ((W0 - W_hat * r) @ prob.mean) if prob.mean is not None else None
    return result


METHOD = Method(DECLARED["pgz"], prune_layer, per_row=lambda options: options.group == "row")
