"""ALPS: the ρ schedule as a pure function, the CG refit against an exact solve, and quality
against SparseGPT and Wanda on synthetic correlated layer problems."""

import pytest
import torch

from helpers import layer_problem
from pruning_core import METHODS, Pattern, PruneSpec, SpecError
from pruning_core.methods.alps import ALPSOptions, normalize, reconstruction_energy, rho_schedule
from pruning_core.oracle import exact_refit
from pruning_core.refit import cg_refit
from pruning_core.stats import relative_error

O = ALPSOptions()
K = 10_000  # weights kept; r = Δ/K


@pytest.mark.parametrize(
    "grown,delta,t,expect_rho,expect_grown,action,branch",
    [
        (False, 2000, 3, 0.1 * 1.3, True, "continue", "fast"),  # r = 0.2 > 0.1
        (True, 500, 3, 0.1 * 1.2, True, "continue", "mid"),  # r = 0.05
        (True, 20, 3, 0.1 * 1.1, True, "continue", "slow"),  # r = 0.002, after growth
        (False, 20, 3, 0.1 / 5, False, "restart", "shrink-restart"),  # before growth: ρ too large
        (True, 0, 3, 0.1, True, "stop", "settled"),
        (False, 0, 3, 0.1 / 5, False, "continue", "shrink"),
        (True, 2, 30, 0.1 * 1.1, True, "stop", "slow"),  # late rule: t ≥ 30 and r < 3e-4
        (True, 2, 27, 0.1 * 1.1, True, "continue", "slow"),  # ... not before switch_iter
    ],
)
def test_rho_schedule_branches(grown, delta, t, expect_rho, expect_grown, action, branch):
    d = rho_schedule(0.1, grown, delta, K, t, O)
    assert d.rho == pytest.approx(expect_rho)
    assert (d.grown, d.action, d.branch) == (expect_grown, action, branch)


def test_rho_schedule_cap_and_no_restart_flag():
    assert rho_schedule(9e5, True, 5000, K, 3, O).rho == O.rho_max
    assert rho_schedule(0.1, False, 20, K, 3, ALPSOptions(restart=False)).action == "continue"


def test_cg_refit_reaches_exact_solution_on_support():
    W, _, stats = layer_problem(40, 96, seed=7)
    Hn, d, _, _ = normalize(stats.H, 0.01)
    B0 = (W * d).T  # [n, m]
    G = Hn @ B0
    keep = torch.rand(B0.shape, generator=torch.Generator().manual_seed(1)) > 0.7
    fit = cg_refit(Hn, G, B0 * keep, keep, rtol=1e-6, max_iter=500)
    assert fit.converged
    # independent exact solve, one column at a time, in float64
    exact = torch.zeros_like(B0, dtype=torch.float64)
    for j in range(B0.shape[1]):
        s = torch.nonzero(keep[:, j]).flatten()
        exact[s, j] = torch.linalg.solve(Hn.double()[s][:, s], G.double()[s, j])

    def objective(B):
        dB = B.double() - B0.double()
        return float((dB * (Hn.double() @ dB)).sum())

    assert abs(objective(fit.B) - objective(exact)) / objective(exact) < 1e-4
    assert torch.all(fit.B[~keep] == 0)


def test_cg_objective_rule_stops_early_near_the_optimum():
    """The objective test ends CG before the residual test does, within 1e-4 of the exact optimum
    on the support, and the objective it tracks from the step gains is the true one."""
    W, _, stats = layer_problem(48, 160, seed=11)
    Hn, d, _, _ = normalize(stats.H, 0.01)
    B0 = (W * d).T  # [n, m]
    G = Hn @ B0
    keep = torch.rand(B0.shape, generator=torch.Generator().manual_seed(2)) > 0.6
    start = reconstruction_energy(B0 * keep, B0, Hn)
    residual = cg_refit(Hn, G, B0 * keep, keep, rtol=1e-6, max_iter=500)
    early = cg_refit(Hn, G, B0 * keep, keep, rtol=1e-6, max_iter=500, energy=start, ftol=1e-5)
    assert residual.stop == "residual" and early.stop == "objective" and early.converged
    assert early.iterations < residual.iterations
    best = reconstruction_energy(residual.B, B0, Hn)
    assert best <= reconstruction_energy(early.B, B0, Hn) <= best * (1 + 1e-4)
    assert early.energy == pytest.approx(reconstruction_energy(early.B, B0, Hn), rel=1e-3)


@pytest.mark.parametrize("pattern", [None, "2:4"])
def test_alps_output_is_the_damped_least_squares_optimum_on_its_support(pattern):
    """The whole method, un-normalized: its weights solve min (ŵ−w)ᵀ(H+λI)(ŵ−w) on its support."""
    W, _, stats = layer_problem(32, 128, seed=3)
    spec = PruneSpec("alps", sparsity=None if pattern else 0.7, pattern=Pattern.parse(pattern))
    res = METHODS["alps"].prune_layer(W, stats, spec, spec.method_options())
    H_damped = stats.H + 0.01 * torch.diagonal(stats.H).mean() * torch.eye(128)
    best = exact_refit(W, H_damped, res.mask)
    ours, floor = relative_error(W, res.weight, H_damped), relative_error(W, best, H_damped)
    assert floor <= ours <= floor * (1 + 1e-4)
    assert res.info["cg_converged"]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [64, 128, 256])
def test_alps_beats_sparsegpt_and_wanda_at_70(seed, n):
    W, _, stats = layer_problem(n // 2, n, seed=seed, tokens=4 * n)
    errors = {}
    for method in ("alps", "sparsegpt", "wanda"):
        spec = PruneSpec(method, sparsity=0.7)
        res = METHODS[method].prune_layer(W.clone(), stats, spec, spec.method_options())
        errors[method] = relative_error(W, res.weight, stats.H)
    assert errors["alps"] < errors["sparsegpt"] < errors["wanda"], errors


def test_unstructured_is_one_layer_wide_top_k_and_deterministic():
    W, _, stats = layer_problem(24, 64, seed=11)
    spec = PruneSpec("alps", sparsity=0.65)
    a = METHODS["alps"].prune_layer(W, stats, spec, spec.method_options())
    b = METHODS["alps"].prune_layer(W, stats, spec, spec.method_options())
    assert int((~a.mask).sum()) == round(0.65 * W.numel())  # exact over the whole layer
    assert torch.equal(a.mask, b.mask) and torch.equal(a.weight, b.weight)
    rows = (~a.mask).sum(dim=1)
    assert rows.min() < rows.max()  # layer-wide comparison group: rows differ (unlike Wanda)


def test_report_fields_and_refit_flag():
    W, _, stats = layer_problem(16, 64, seed=2)
    spec = PruneSpec("alps", sparsity=0.6)
    info = METHODS["alps"].prune_layer(W, stats, spec, spec.method_options()).info
    assert {"admm_iters", "rho_final", "support_change", "rel_error_admm", "rel_error_refit", "cg_iters"} <= set(info)
    assert info["rel_error_refit"] <= info["rel_error_admm"] + 1e-7
    off = PruneSpec("alps", sparsity=0.6, options={"refit": False})
    assert "cg_iters" not in METHODS["alps"].prune_layer(W, stats, off, off.method_options()).info


def test_options_are_validated():
    with pytest.raises(SpecError, match="rho0"):
        PruneSpec("alps", options={"rho0": -1.0})
    assert PruneSpec("alps", options={"max_iter": 50, "rho0": 0.3}).method_options().max_iter == 50


def test_dead_inputs_do_not_break_normalization():
    _, _, stats = layer_problem(8, 32, seed=0)
    H = stats.H.clone()
    H[5, :] = 0
    H[:, 5] = 0
    Hn, *_ = normalize(H, 0.01)
    assert torch.isfinite(Hn).all() and torch.allclose(torch.diagonal(Hn), torch.ones(32), atol=1e-5)
