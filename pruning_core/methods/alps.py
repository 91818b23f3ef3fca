"""ALPS (Meng et al., NeurIPS 2024; algorithms.md §2): ADMM with an adaptive penalty ρ on the
layer-wise reconstruction problem, then a conjugate-gradient refit on the chosen support.

In the unit-diagonal space (§1.2) with Ĥ = D⁻¹(H + λI)D⁻¹ and B₀ = (W D)ᵀ (n×m):

    min_B ½ tr((B−B₀)ᵀ Ĥ (B−B₀))   s.t.  B has k nonzeros (one layer-wide top-k) or is N:M.

Splitting B = D' (the constrained copy, called `Dc` below to keep D for the scaling) with a
scaled dual V gives the three ADMM steps of §2.3. The B-update solves (Ĥ+ρI)B = G − V + ρDc
through one eigendecomposition Ĥ = QΛQᵀ per distinct input: M(ρ) = Q diag(1/(Λ+ρ)) Qᵀ is rebuilt
from the factors when ρ changes, never refactorized.

Layers that share an input (q/k/v; gate/up) share Ĥ, D and the eigendecomposition through the
statistics cache. Their ADMM runs are not stacked into one solve: with per-layer ρ, stacking
needs the factored update B = Q·diag(1/(Λ+ρ_l))·QᵀR (two n×n·n×m GEMMs, 4mn² per iteration)
instead of one GEMM with M(ρ) (2mn²) plus a 2n³ rebuild every `update_iter` iterations. For the
shapes here (m ≥ n/3, update_iter = 3) the stacked form does more arithmetic — e.g. q/k/v of
SmolLM2 (n = 576, m = 960 stacked): 1.27 vs 0.89 GFLOP per iteration; LLaMA-7B q/k/v (n = 4096,
m = 12288): 825 vs 550 GFLOP — so layers are solved one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import masks
from ..numerics import add_ridge, unit_diagonal
from ..refit import cg_refit
from ..spec import DECLARED
from .base import LayerResult, Method

ALPSOptions = DECLARED["alps"].options_class  # declared in pruning_core/spec/methods.py


@dataclass(frozen=True)
class RhoDecision:
    rho: float
    grown: bool
    action: str  # "continue" | "restart" | "stop"
    branch: str  # the row of the §2.4 table that fired


def rho_schedule(rho: float, grown: bool, delta: int, k: int, t: int, o: ALPSOptions) -> RhoDecision:
    """One ρ update (§2.4): Δ = positions whose zero/nonzero status changed since the previous
    check, r = Δ/k. Rows are evaluated in order; then ρ is capped and the late stop rule applied."""
    r = delta / max(k, 1)
    action = "continue"
    if r > o.fast_rate:
        rho, grown, branch = rho * o.grow_fast, True, "fast"
    elif r > o.mid_rate:
        rho, grown, branch = rho * o.grow_mid, True, "mid"
    elif delta >= 1:
        if grown:
            rho, branch = rho * o.grow_slow, "slow"
        else:  # the support barely moves before any growth: ρ started too large
            rho, branch = rho / o.shrink, "shrink-restart"
            action = "restart" if o.restart else "continue"
    elif grown:
        return RhoDecision(rho, grown, "stop", "settled")
    else:
        rho, branch = rho / o.shrink, "shrink"
    rho = min(rho, o.rho_max)
    if t >= o.switch_iter and r < o.stop_rate:
        action = "stop"
    return RhoDecision(rho, grown, action, branch)


def normalize(H: torch.Tensor, percdamp: float):
    """Damp, scale to unit diagonal, eigendecompose in float64 (§2.2). Returns (Ĥ, d, Λ, Q)
    in float32 with d the diagonal scaling (D = diag(d))."""
    Hn, d = unit_diagonal(add_ridge(H.double(), percdamp))
    evals, Q = torch.linalg.eigh(Hn)
    return Hn.float(), d.float(), evals.float(), Q.float()


def _solve_operator(Q: torch.Tensor, evals: torch.Tensor, rho: float) -> torch.Tensor:
    """M(ρ) = Q diag(1/(Λ+ρ)) Qᵀ = (Ĥ + ρI)⁻¹, from the factors (2n³, no factorization)."""
    return (Q * (1.0 / (evals + rho)).unsqueeze(0)) @ Q.T


def project(X: torch.Tensor, pattern, k: int) -> torch.Tensor:
    """Keep mask of P_C in B-space (n×m): one layer-wide top-k of |X|, or N:M along the inputs."""
    if pattern.is_nm:
        return masks.nm_keep(X.abs().T, pattern.n_keep, pattern.m).T  # groups run along n
    return masks.keep_top_k(X.abs(), k)


@dataclass
class _AdmmOutcome:
    B: torch.Tensor
    iterations: int
    rho: float
    restarts: int
    change_rate: float  # r at the last check


def admm(Hn, Q, evals, B0, G, pattern, k: int, o: ALPSOptions) -> _AdmmOutcome:
    """ADMM of §2.3 with the ρ schedule of §2.4; starts from Dc = P_C(B₀), V = 0."""
    keep_init = project(B0, pattern, k)
    D_init = B0 * keep_init
    B, Dc, V = B0.clone(), D_init.clone(), torch.zeros_like(B0)
    rho, grown, restarts, last_rate = o.rho0, False, 0, 1.0
    M = _solve_operator(Q, evals, rho)
    previous = keep_init
    t = 0
    for t in range(o.max_iter):
        B = M @ (G - V + rho * Dc)  # B-update: (Ĥ+ρI)B = G − V + ρDc
        Z = B + V / rho
        keep = project(Z, pattern, k)
        Dc = Z * keep  # D-update: projection onto the constraint set
        V.add_(rho * (B - Dc))  # dual update
        if t % o.update_iter:
            continue
        delta = int((keep ^ previous).sum())
        previous = keep
        last_rate = delta / max(k, 1)
        decision = rho_schedule(rho, grown, delta, k, t, o)
        grown = decision.grown
        if decision.action == "stop":
            break
        if decision.action == "restart":
            B, Dc, V = B0.clone(), D_init.clone(), torch.zeros_like(B0)
            restarts += 1
        if decision.rho != rho:
            rho = decision.rho
            M = _solve_operator(Q, evals, rho)
    return _AdmmOutcome(B, t + 1, rho, restarts, last_rate)


def reconstruction_energy(B: torch.Tensor, B0: torch.Tensor, Hn: torch.Tensor) -> float:
    """tr((B−B₀)ᵀĤ(B−B₀)): the reconstruction error in the damped, normalized space."""
    dB = B - B0
    return float((dB * (Hn @ dB)).sum())


def kept_count(size: int, spec) -> int:
    """How many of a layer's `size` weights the spec keeps."""
    if spec.pattern.is_nm:
        return size * spec.pattern.n_keep // spec.pattern.m
    return size - masks.n_pruned(size, spec.sparsity)


def prune_layer(W: torch.Tensor, stats, spec, o: ALPSOptions) -> LayerResult:
    """ALPS for one layer: ADMM (§2.3–2.4), project B, CG refit on the support (§2.5), unscale."""
    Hn, d, evals, Q = stats.cached(f"alps:{o.percdamp}", lambda: normalize(stats.H, o.percdamp))
    B0 = (W * d.unsqueeze(0)).T.contiguous()  # [n, m]: B₀ = (W D)ᵀ
    G = Hn @ B0  # [n, m]
    n, m = B0.shape
    pattern = spec.pattern
    k = kept_count(n * m, spec)
    run = admm(Hn, Q, evals, B0, G, pattern, k, o)
    keep = project(run.B, pattern, k)  # project the B iterate, not Dc (§2.5 step 1)
    B = run.B * keep
    scale = max(float((B0 * G).sum()), 1e-30)  # tr(B₀ᵀĤB₀): errors are reported relative to it
    energy = reconstruction_energy(B, B0, Hn)
    info = {"admm_iters": run.iterations, "rho_final": run.rho, "restarts": run.restarts,
            "support_change": run.change_rate, "rel_error_admm": energy / scale}
    if o.refit:
        fit = cg_refit(Hn, G, B, keep, o.cg_rtol, o.cg_max_iter, energy, o.cg_ftol)
        B = fit.B * keep
        info.update(cg_iters=fit.iterations, cg_converged=fit.converged, cg_residual=fit.residual, cg_stop=fit.stop)
    info["rel_error_refit"] = reconstruction_energy(B, B0, Hn) / scale
    W_hat = B.T / d.unsqueeze(0)  # [m, n]: W = Bᵀ D⁻¹
    return LayerResult(weight=W_hat * keep.T, mask=keep.T.contiguous(), info=info)


METHOD = Method(DECLARED["alps"], prune_layer)
