import itertools

import pytest
import torch

from pruning_core import masks
from pruning_core.spec import Pattern


def test_prune_lowest_zeros_exactly_k_even_with_ties():
    score = torch.ones(8, 16)  # all tied: a `<= threshold` rule would prune everything
    keep = masks.prune_lowest(score, 37)
    assert int((~keep).sum()) == 37


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.73, 0.99])
def test_per_row_counts(sparsity):
    score = torch.rand(5, 40)
    keep = masks.select(score, Pattern(), sparsity, group="row")
    assert ((~keep).sum(dim=1) == round(sparsity * 40)).all()
    # the pruned entries are the lowest of their row
    for row_s, row_k in zip(score, keep):
        if 0 < int(row_k.sum()) < row_k.numel():
            assert row_s[~row_k].max() <= row_s[row_k].min()


def test_nm_keep_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    score = torch.rand(6, 24, generator=g)
    for n, m in [(2, 4), (4, 8), (1, 3)]:
        keep = masks.nm_keep(score, n, m)
        assert masks.is_valid_nm(keep, n, m)
        for r in range(score.shape[0]):
            for start in range(0, 24, m):
                group = score[r, start : start + m]
                best = max(itertools.combinations(range(m), n), key=lambda c: sum(group[i].item() for i in c))
                assert sorted(torch.nonzero(keep[r, start : start + m]).flatten().tolist()) == sorted(best)


def test_nm_rejects_indivisible_width():
    with pytest.raises(ValueError, match="multiple of M"):
        masks.nm_keep(torch.rand(2, 10), 2, 4)


def test_is_valid_nm_detects_violation():
    keep = torch.zeros(1, 8, dtype=torch.bool)
    keep[0, :3] = True
    assert not masks.is_valid_nm(keep, 2, 4)


@pytest.mark.parametrize("k", [0, 1, 50, 199, 200])
def test_keep_top_k_matches_sort_with_ties(k):
    g = torch.Generator().manual_seed(k)
    score = torch.randint(0, 7, (10, 20), generator=g).float()  # many ties
    keep = masks.keep_top_k(score, k)
    assert int(keep.sum()) == k
    if 0 < k < 200:
        assert score[keep].min() >= score[~keep].max()


@pytest.mark.parametrize(
    "values",
    [
        torch.randn(5000, generator=torch.Generator().manual_seed(0)),  # both signs
        torch.randint(-3, 4, (4000,), generator=torch.Generator().manual_seed(1)).float(),  # heavy ties
        torch.randn(3000, generator=torch.Generator().manual_seed(2)) * 1e-30,  # subnormal range
        torch.tensor([0.0, -0.0, 1.0, -1.0, 0.0, float("inf"), -float("inf"), 2.5]),
        torch.tensor([7.0]),
    ],
)
def test_kth_largest_matches_sort(values):
    desc = torch.sort(values, descending=True).values
    for k in sorted({1, 2, len(values) // 2, len(values) - 1, len(values)} & set(range(1, len(values) + 1))):
        assert float(masks.kth_largest(values, k)) == float(desc[k - 1]), k
