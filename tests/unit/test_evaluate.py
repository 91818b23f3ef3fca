"""Perplexity: the block-sequential path (for models larger than the GPU) gives the same number as
the whole-model path on every supported architecture, and leaves the model as it found it."""

import pytest
import torch

from helpers import tiny_model
from pruning_core.blocks import find_blocks
from pruning_core.evaluate import _groups, fits_on, perplexity

IDS = torch.randint(0, 128, (700,), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", ["llama", "opt", "qwen2"])
def test_blockwise_equals_whole_model(arch):
    model = tiny_model(arch)
    with torch.no_grad():  # make the blocks matter: a random tiny model is near-uniform otherwise
        for p in model.parameters():
            p.mul_(8.0 if p.dim() == 2 else 1.0)
    _, blocks = find_blocks(model)
    seen = []
    whole = perplexity(model, IDS, 64, None, "cpu", blockwise=False)
    blockwise = perplexity(model, IDS, 64, 7, "cpu", batch_size=3, blockwise=True,
                           progress=lambda done, total: seen.append((done, total)))
    assert blockwise[1] == 7 and seen[-1] == (7, 7) and all(d <= t for d, t in seen)
    assert blockwise[0] == pytest.approx(perplexity(model, IDS, 64, 7, "cpu", blockwise=False)[0], rel=1e-5)
    assert find_blocks(model)[1] is blocks  # the block list is back
    assert all(p.device.type == "cpu" for p in model.parameters())
    # the replay carries the blocks' work: changing one block changes both paths alike
    with torch.no_grad():
        next(blocks[-1].parameters()).zero_()
    changed = perplexity(model, IDS, 64, None, "cpu", blockwise=True)
    assert changed[0] != pytest.approx(whole[0], rel=1e-3)
    assert changed[0] == pytest.approx(perplexity(model, IDS, 64, None, "cpu", blockwise=False)[0], rel=1e-5)


def test_everything_fits_on_the_cpu():
    assert fits_on(tiny_model("llama"), torch.device("cpu"))


def test_blockwise_groups_keep_order_and_budget():
    batches = [torch.zeros(b, w, dtype=torch.long) for b, w in [(4, 10), (4, 8), (4, 8), (2, 5), (1, 100)]]
    groups = list(_groups(batches, bytes_per_token=2, budget=150))  # 80, 64, 64, 20, 200 bytes
    assert [[b.shape for b in g] for g in groups] == [
        [(4, 10), (4, 8)], [(4, 8), (2, 5)], [(1, 100)]]  # a batch over budget still goes, alone
    assert [b for g in groups for b in g] == batches
