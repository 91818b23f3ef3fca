"""The block-sequential driver on tiny random LLaMA, OPT and Qwen2 models."""


import pytest
import torch

from helpers import tiny_model
from pruning_core import METHODS, Cancelled, Pattern, PruneSpec, prune_model
from pruning_core.masks import is_valid_nm
from pruning_core.methods.base import LayerResult, Method
from pruning_core.spec import DECLARED, MethodSpec

ARCHS = {"llama": 7, "qwen2": 7, "opt": 6}  # target linears per block


def calib(n=6, seqlen=24, vocab=128, seed=0):
    return torch.randint(0, vocab, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def linear_weights(model):
    return {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("pattern", [None, "2:4"])
def test_every_block_linear_pruned_exactly(arch, method, pattern):
    model = tiny_model(arch)
    before = linear_weights(model)
    embed = model.get_input_embeddings().weight.detach().clone()
    spec = PruneSpec(method, sparsity=None if pattern else 0.6, pattern=Pattern.parse(pattern))
    result = prune_model(model, calib(), spec, batch_size=4)

    assert len(result.layers) == 2 * ARCHS[arch]
    after = linear_weights(model)
    for report in result.layers:
        W = after[report.name]
        zeros = int((W == 0).sum())
        if pattern:
            assert is_valid_nm(W != 0, 2, 4)
            assert report.sparsity == pytest.approx(0.5)
        else:
            assert abs(zeros - 0.6 * W.numel()) <= W.shape[0]
        assert report.rel_error is None if method == "magnitude" else report.rel_error >= 0
    pruned_names = {r.name for r in result.layers}
    for name, W in before.items():
        if name not in pruned_names:  # lm_head (and OPT's projections, if any) stay dense
            assert torch.equal(after[name], W), name
    assert torch.equal(model.get_input_embeddings().weight, embed)
    assert 0.49 < result.sparsity < 0.61


def test_zero_sparsity_keeps_outputs():
    model = tiny_model("llama")
    ids = calib()
    ref = model(ids).logits
    prune_model(model, ids, PruneSpec("wanda", sparsity=0.0))
    assert torch.allclose(model(ids).logits, ref, atol=1e-6)


def test_statistics_are_shared_per_input_and_match_raw_inputs(monkeypatch):
    """q/k/v (and gate/up) must receive one shared H, equal to XᵀX/N of their real block-0 input."""
    seen = {}

    def record(W, stats, spec, options):
        seen[len(seen)] = stats
        return LayerResult(weight=W, mask=torch.ones_like(W, dtype=torch.bool))

    declared = MethodSpec("record", "test", stats="gram")
    monkeypatch.setitem(DECLARED, "record", declared)
    monkeypatch.setitem(METHODS, "record", Method(declared, record))
    model = tiny_model("llama")
    captured = []
    handle = model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, a, o: captured.append(a[0]))
    ids = calib()
    with torch.no_grad():
        model(ids)
    handle.remove()
    X = torch.cat([x.reshape(-1, x.shape[-1]) for x in captured])  # [tokens, hidden]

    prune_model(model, ids, PruneSpec("record", sparsity=0.0), batch_size=4)
    q, k, v, o, gate, up, down = (seen[i] for i in range(7))
    assert q is k is v and gate is up
    assert len({id(q), id(o), id(gate), id(down)}) == 4
    assert q.tokens == ids.numel()
    assert torch.allclose(q.H, X.T @ X / X.shape[0], rtol=1e-4, atol=1e-6)


def test_each_method_gathers_only_the_statistics_it_declares(monkeypatch):
    """Wanda gets the input norms (no n×n matrix), equal to diag(XᵀX/N); magnitude runs no
    forward pass at all (it needs no calibration tokens)."""
    model = tiny_model("llama")
    captured, calls = [], []
    q_proj = model.model.layers[0].self_attn.q_proj
    handle = q_proj.register_forward_hook(lambda m, a, o: captured.append(a[0]))
    ids = calib()
    with torch.no_grad():
        model(ids)
    handle.remove()
    X = torch.cat([x.reshape(-1, x.shape[-1]) for x in captured])  # [tokens, hidden]
    seen = []
    wanda = METHODS["wanda"]
    monkeypatch.setitem(METHODS, "wanda", Method(wanda.declared, lambda W, stats, spec, o:
                                                 seen.append(stats) or wanda.prune_layer(W, stats, spec, o)))
    prune_model(model, ids, PruneSpec("wanda"), batch_size=4)
    assert seen[0].H is None and seen[0].sqnorm.shape == (X.shape[1],)
    assert torch.allclose(seen[0].sqnorm, (X * X).sum(0) / X.shape[0], rtol=1e-4, atol=1e-6)

    model = tiny_model("llama")
    for block in model.model.layers:
        block.register_forward_hook(lambda m, a, o: calls.append(1))
    result = prune_model(model, None, PruneSpec("magnitude"))
    assert calls == [] and len(result.layers) == 14
    assert all(r.rel_error is None and r.info["rel_error_basis"] == "none" for r in result.layers)


def test_progress_and_cancellation():
    model = tiny_model("llama")
    events = []

    def cb(p):
        events.append((p.stage, p.layers_done, p.layers_total))
        if p.stage == "pruning" and p.layers_done == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        prune_model(model, calib(), PruneSpec("magnitude"), progress=cb)
    assert events[0] == ("calibrating", 0, 14)
    assert [e[1] for e in events if e[0] == "pruning"] == [1, 2, 3]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    ids = calib()
    cpu_model, gpu_model = tiny_model("llama"), tiny_model("llama")
    spec = PruneSpec("sparsegpt", sparsity=0.5)
    prune_model(cpu_model, ids, spec, device="cpu")
    prune_model(gpu_model, ids, spec, device="cuda")
    assert next(gpu_model.parameters()).device.type == "cpu"  # blocks go back home
    for (n, a), (_, b) in zip(linear_weights(cpu_model).items(), linear_weights(gpu_model).items()):
        assert torch.equal(a == 0, b == 0) or (a == 0).ne(b == 0).float().mean() < 1e-3, n


def test_the_eta_counts_layer_time_only():
    """Calibration before the first layer must not read as layer time: at layer 1 of 100 after
    300 s of calibration and a 2 s layer, 198 s are left, not 29700."""
    from pruning_core.driver import Progress

    p = Progress("pruning", 1, 100, elapsed=302.0, pace=(1, 2.0))
    assert p.eta_seconds == pytest.approx(198.0)
    assert Progress("calibrating", 0, 100, elapsed=300.0).eta_seconds is None


def _deep(arch: str, blocks: int, seed: int = 0):
    from transformers import AutoModelForCausalLM

    from helpers import tiny_config

    torch.manual_seed(seed)
    cfg = tiny_config(arch)
    cfg.num_hidden_layers = blocks
    return AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_the_dense_target_brings_the_output_closer_to_the_dense_models(arch):
    """Reconstructing towards the dense model's layer outputs (dense_target) corrects part of the
    earlier blocks' error: on tokens the calibration never saw, the last hidden state of a model
    pruned with α = 0.5 is closer to the dense model's than with the papers' target (α = 0), and
    every layer still prunes exactly its share."""
    import copy

    dense = _deep(arch, 4)
    ids, held_out = calib(16, 32, seed=10), calib(16, 32, seed=99)
    reference = dense(held_out, output_hidden_states=True).hidden_states[-1].detach()
    errors = {}
    for alpha in (0.0, 0.5):
        model = copy.deepcopy(dense)
        result = prune_model(model, ids, PruneSpec("sparsegpt", sparsity=0.7, dense_target=alpha))
        assert all(abs(r.sparsity - 0.7) < 0.02 for r in result.layers)
        hidden = model(held_out, output_hidden_states=True).hidden_states[-1].detach()
        errors[alpha] = float((hidden - reference).norm() / reference.norm())
    assert errors[0.5] < 0.95 * errors[0.0]


def test_the_dense_target_changes_nothing_in_the_first_block():
    """Block 0 sees the same inputs in both streams, so its target is the dense weights
    themselves (the ridge is added to C as to H) and its masks are the plain run's; the blocks
    after it differ."""
    import copy

    dense = _deep("llama", 2)
    masks = {}
    for alpha in (0.0, 1.0):
        model = copy.deepcopy(dense)
        masks[alpha] = prune_model(model, calib(), PruneSpec("alps", sparsity=0.6, dense_target=alpha)).masks
    first = [n for n in masks[0.0] if ".layers.0." in n]
    later = [n for n in masks[0.0] if ".layers.1." in n]
    same = sum(int((masks[0.0][n][0] == masks[1.0][n][0]).sum()) for n in first)
    assert same / sum(masks[0.0][n][0].size for n in first) > 0.999
    assert any((masks[0.0][n][0] != masks[1.0][n][0]).any() for n in later)


def test_shifted_weight_solves_the_mixed_least_squares():
    """W_α minimizes α‖W X_d − Ŵ X_p‖² + (1−α)‖W X_p − Ŵ X_p‖² (+ the ridge) in closed form."""
    from pruning_core.dense_target import shifted_weight

    g = torch.Generator().manual_seed(0)
    Xp = torch.randn(512, 16, generator=g, dtype=torch.float64)  # [tokens, n]
    Xd = Xp + 0.3 * torch.randn(512, 16, generator=g, dtype=torch.float64)  # [tokens, n]
    W = torch.randn(8, 16, generator=g, dtype=torch.float64)  # [m, n]
    H, C = Xp.T @ Xp / 512, Xp.T @ Xd / 512
    alpha = 0.4
    got = shifted_weight(W, H, C, alpha, percdamp=0.0)
    target = alpha * Xd @ W.T + (1 - alpha) * Xp @ W.T  # [tokens, m]
    expected = torch.linalg.lstsq(Xp, target).solution.T  # [m, n]
    assert torch.allclose(got, expected, atol=1e-8)
    assert torch.equal(shifted_weight(W, H, C, 0.0, 0.01), W)
