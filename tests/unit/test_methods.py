"""Properties every registered method must have, plus per-method checks against independent
computations (brute-force selections, the exact least-squares refit)."""

import pytest
import torch

from helpers import layer_problem
from pruning_core import METHODS, Pattern, PruneSpec
from pruning_core.masks import is_valid_nm
from pruning_core.oracle import exact_refit
from pruning_core.stats import relative_error

SETTINGS = [("0.3", None), ("0.5", None), ("0.7", None), ("0", "2:4"), ("0", "4:8")]


def run(method, W, stats, sparsity=0.5, pattern=None, **options):
    spec = PruneSpec(method, sparsity=None if pattern else sparsity, pattern=Pattern.parse(pattern), options=options)
    return METHODS[method].prune_layer(W.clone(), stats, spec, spec.method_options())


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("sparsity,pattern", SETTINGS)
def test_exact_sparsity_and_valid_pattern(method, sparsity, pattern):
    W, _, stats = layer_problem(24, 64, seed=1)
    res = run(method, W, stats, float(sparsity), pattern)
    keep = res.mask
    assert keep.dtype == torch.bool and keep.shape == W.shape
    assert torch.all(res.weight[~keep] == 0), "pruned positions must hold exact zeros"
    zeros = int((~keep).sum())
    if pattern:
        n, m = map(int, pattern.split(":"))
        assert is_valid_nm(keep, n, m)
        assert zeros == W.numel() * (m - n) // m  # N:M is exact: every group keeps exactly N
    else:
        # exact up to the rounding of one weight per comparison group (at most one per row)
        assert abs(zeros - float(sparsity) * W.numel()) <= W.shape[0]


def test_magnitude_is_global_top_k():
    W, _, stats = layer_problem(16, 32, seed=2)
    res = run("magnitude", W, stats, 0.6)
    k = round(0.4 * W.numel())
    kept_values = W.abs()[res.mask]
    assert kept_values.numel() == k
    assert kept_values.min() >= W.abs()[~res.mask].max()
    assert torch.equal(res.weight[res.mask], W[res.mask])


def test_wanda_matches_score_from_raw_inputs():
    W, X, stats = layer_problem(16, 32, seed=3)
    res = run("wanda", W, stats, 0.5)
    score = W.abs() * X.norm(dim=0)  # |W_ij|·‖X_j‖ straight from the inputs
    for i in range(W.shape[0]):
        expected = set(torch.topk(score[i], 16).indices.tolist())
        assert set(torch.nonzero(res.mask[i]).flatten().tolist()) == expected
    assert torch.equal(res.weight[res.mask], W[res.mask])


def test_sparsegpt_with_identity_hessian_is_magnitude():
    """With H = I there is nothing to compensate: no update, selection by |W| over one block."""
    from pruning_core.stats import LayerStats

    W = torch.randn(12, 32, generator=torch.Generator().manual_seed(4))
    stats = LayerStats(H=torch.eye(32), tokens=1)
    sgpt = run("sparsegpt", W, stats, 0.5, blocksize=32)
    mag = run("magnitude", W, stats, 0.5)
    assert torch.equal(sgpt.mask, mag.mask)
    assert torch.allclose(sgpt.weight, mag.weight)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("pattern", [None, "2:4"])
def test_sparsegpt_update_beats_no_update_and_respects_ls_floor(seed, pattern):
    W, _, stats = layer_problem(32, 96, seed=seed)
    res = run("sparsegpt", W, stats, 0.6, pattern)
    err = relative_error(W, res.weight, stats.H)
    no_update = relative_error(W, W * res.mask, stats.H)
    floor = relative_error(W, exact_refit(W, stats.H, res.mask), stats.H)
    wanda = relative_error(W, run("wanda", W, stats, 0.6, pattern).weight, stats.H)
    assert floor <= err * (1 + 1e-6)
    assert err < 0.8 * no_update
    assert err < wanda


def test_sparsegpt_zero_sparsity_is_identity():
    W, _, stats = layer_problem(8, 32, seed=5)
    res = run("sparsegpt", W, stats, 0.0)
    assert res.mask.all()
    assert torch.allclose(res.weight, W, atol=1e-5)
