"""Sparsity profiles: the planner's budget (spec.profile), its checks at the door (spec.layout),
and the driver pruning each layer to its planned share on tiny real models."""

import pytest
import torch

from helpers import tiny_config, tiny_model
from pruning_core import METHODS, Pattern, PruneSpec, prune_model
from pruning_core.errors import SpecError
from pruning_core.profiles import layer_slots as model_slots
from pruning_core.profiles import outlier_ratio
from pruning_core.spec import JobSpec, LayerSlot, SparsityProfile, layout
from pruning_core.spec.profile import MAX_LAYER_SPARSITY, plan


def calib(n=6, seqlen=24, vocab=128, seed=0):
    return torch.randint(0, vocab, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def zeros_over_pruned(model, result) -> tuple[int, int]:
    modules = dict(model.named_modules())
    zeros = sum(int((modules[r.name].weight == 0).sum()) for r in result.layers)
    return zeros, sum(r.shape[0] * r.shape[1] for r in result.layers)


PROFILES = {
    "owl": {"kind": "owl"},
    "rules": {"rules": [{"match": r"layers\.0\.self_attn\.q", "sparsity": 0.0}, {"match": "mlp.down", "sparsity": 0.1},
                        {"match": "mlp", "sparsity": 0.75}]},  # down_proj takes the first matching rule
    "owl+rules": {"kind": "owl", "rules": [{"match": r"layers\.1\.mlp\.up", "sparsity": 0.0}]},
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_global_sparsity_is_exact_whatever_the_profile(method, profile):
    model = tiny_model("llama")
    spec = PruneSpec(method, sparsity=0.6, profile=PROFILES[profile])
    result = prune_model(model, calib(), spec, batch_size=3)
    zeros, total = zeros_over_pruned(model, result)
    # within one rounding step of the method: a row for row-wise methods, a weight otherwise
    step = max(r.shape[0] for r in result.layers) if METHODS[method].per_row(spec.method_options()) else 1
    assert abs(zeros - 0.6 * total) <= step / 2 + 1e-6, (zeros, 0.6 * total)
    for r in result.layers:  # each layer got what its plan said
        assert r.target is not None and abs(r.sparsity - r.target) * r.shape[0] * r.shape[1] < 1
    targets = {r.name: r.target for r in result.layers}
    assert len({round(t, 3) for t in targets.values()}) > 1  # not uniform in disguise
    assert result.profile["kind"] == SparsityProfile.from_value(PROFILES[profile]).kind


def test_rules_apply_in_order_and_zero_leaves_a_layer_untouched():
    model = tiny_model("llama")
    q0 = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    result = prune_model(model, calib(), PruneSpec("sparsegpt", sparsity=0.6, profile=PROFILES["rules"]), batch_size=3)
    by_name = {r.name: r for r in result.layers}
    assert torch.equal(model.model.layers[0].self_attn.q_proj.weight, q0)
    assert by_name["model.layers.0.self_attn.q_proj"].info.get("dense") is True
    for i in (0, 1):
        for part in ("gate_proj", "up_proj"):
            assert by_name[f"model.layers.{i}.mlp.{part}"].sparsity == pytest.approx(0.75, abs=1e-3)
        assert by_name[f"model.layers.{i}.mlp.down_proj"].sparsity == pytest.approx(0.1, abs=1e-3)
    others = [r for n, r in by_name.items() if "mlp" not in n and n != "model.layers.0.self_attn.q_proj"]
    # the rest share what is left, uniformly (to the one weight each the rounding carries)
    spread = max(r.target for r in others) - min(r.target for r in others)
    assert spread * min(r.shape[0] * r.shape[1] for r in others) <= 2


def _planted_outliers(model, block: int, features: int = 3, scale: float = 40.0) -> None:
    """Give a few input features of one block's linears huge weights: outliers in |W|·‖x‖."""
    layer = model.model.layers[block]
    with torch.no_grad():
        for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                    layer.mlp.gate_proj, layer.mlp.up_proj):
            lin.weight[:, :features] *= scale


@pytest.mark.parametrize("block", [0, 1])
def test_owl_gives_the_block_with_planted_outliers_less_sparsity(block):
    from transformers import AutoModelForCausalLM

    cfg = tiny_config("llama")
    cfg.num_hidden_layers = 4
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    _planted_outliers(model, block)
    result = prune_model(model, calib(), PruneSpec("wanda", sparsity=0.7, profile="owl"), batch_size=3)
    ratios = result.profile["block_outlier_ratios"]
    assert max(range(4), key=ratios.__getitem__) == block
    per_block = [[r.target for r in result.layers if f"layers.{i}." in r.name] for i in range(4)]
    mean = [sum(t) / len(t) for t in per_block]
    assert min(range(4), key=mean.__getitem__) == block
    assert max(mean) - min(mean) == pytest.approx(2 * 0.08, abs=0.02)  # the spread is 2λ


def test_per_layer_owl_ratios_rank_the_planted_layers_first(monkeypatch):
    """bench/owl_select.py's per-layer variant: one ratio per pruned layer, each layer offset by its own."""
    import functools

    from transformers import AutoModelForCausalLM

    from pruning_core import driver, profiles

    cfg = tiny_config("llama")
    cfg.num_hidden_layers = 3
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    _planted_outliers(model, 1)
    monkeypatch.setattr(driver, "owl_ratios", functools.partial(profiles.owl_ratios, per_layer=True))
    monkeypatch.setattr(driver, "layer_slots", functools.partial(profiles.layer_slots, per_layer=True))
    result = prune_model(model, calib(), PruneSpec("wanda", sparsity=0.7, profile="owl"), batch_size=3)
    ratios = result.profile["block_outlier_ratios"]
    assert len(ratios) == len(result.layers)
    planted = {f"model.layers.1.{n}" for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "mlp.gate_proj", "mlp.up_proj")}
    by_target = sorted(result.layers, key=lambda r: r.target)
    assert {r.name for r in by_target[:len(planted)]} == planted
    zeros, total = zeros_over_pruned(model, result)
    assert abs(zeros - 0.7 * total) <= max(r.shape[0] for r in result.layers) / 2  # Wanda prunes whole rows' counts


def test_outlier_ratio_counts_scores_above_m_times_the_mean():
    W = torch.ones(2, 4)
    norm = torch.tensor([1.0, 1.0, 1.0, 100.0])  # one feature 100x the others' norm
    # scores 1,1,1,100 per row: mean 25.75; with M=3 only the 100s are outliers (2 of 8)
    assert outlier_ratio([W], [norm], 3.0) == pytest.approx(25.0)
    assert outlier_ratio([W], [norm], 5.0) == 0.0


def test_owl_weighs_scores_by_the_mean_per_sample_norm_whatever_the_batching():
    from pruning_core.stats import SampleNormAccumulator

    # feature 0: one sample loud (norm 10), one silent; feature 1: both samples at norm 5
    x = torch.zeros(2, 4, 2)  # [samples, tokens, features]
    x[0, :, 0] = 5.0
    x[:, :, 1] = 2.5
    whole, split = SampleNormAccumulator(2, torch.device("cpu")), SampleNormAccumulator(2, torch.device("cpu"))
    whole.add(x)
    split.add(x[:1])
    split.add(x[1:])
    for acc in (whole, split):
        stats = acc.finish()
        assert stats.sample_norm.tolist() == pytest.approx([5.0, 5.0])  # means of (10, 0) and (5, 5)
        assert stats.tokens == 8
    # the all-token norm would rank feature 0 above feature 1 (√100 against √50)
    assert (x[..., 0] ** 2).sum().sqrt() > (x[..., 1] ** 2).sum().sqrt()


def test_planner_clips_and_still_hits_the_target():
    slots = [LayerSlot(f"b{i}.l", 10, 100, i) for i in range(4)]
    profile = SparsityProfile("owl", owl_lambda=0.5)
    targets = plan(slots, 0.9, profile, ratios=[0.0, 1.0, 2.0, 3.0])
    assert all(0 <= t <= MAX_LAYER_SPARSITY for t in targets.values())
    assert sum(t * 1000 for t in targets.values()) == pytest.approx(0.9 * 4000, abs=0.5)
    assert targets["b3.l"] < targets["b0.l"]  # most outliers, least sparsity


@pytest.mark.parametrize("profile,field", [
    ({"kind": "owl", "owl_lambda": -0.1}, "sparsity_profile.owl_lambda"),
    ({"kind": "owl", "owl_m": 0.5}, "sparsity_profile.owl_m"),
    ({"rules": [{"match": "[", "sparsity": 0.5}]}, "sparsity_profile.rules[0].match"),
    ({"rules": [{"match": "mlp"}]}, "sparsity_profile.rules[0]"),
    ({"kind": "rules", "rules": []}, "sparsity_profile.rules"),
    ({"kind": "owl", "extra": 1}, "sparsity_profile.extra"),
    ("sideways", "sparsity_profile.kind"),
])
def test_bad_profiles_name_their_field(profile, field):
    with pytest.raises(SpecError) as err:
        JobSpec.from_dict({"model": "smollm2-135m", "method": "wanda", "sparsity_profile": profile})
    assert field in [e["field"] for e in err.value.fields()]


def test_profile_round_trips_through_the_stored_form():
    body = {"model": "smollm2-135m", "method": "alps", "sparsity": 0.7,
            "sparsity_profile": {"kind": "owl", "owl_m": 7, "owl_lambda": 0.1, "rules": [{"match": "lm", "sparsity": 0}]}}
    job = JobSpec.from_dict(body)
    assert JobSpec.from_dict(job.to_dict()) == job
    assert job.to_dict()["sparsity_profile"]["owl_m"] == 7.0


@pytest.mark.parametrize("arch", ["llama", "qwen2", "opt"])
def test_layout_from_config_matches_the_real_model(arch):
    """The door's view of the layers (config only) is the driver's view (the modules)."""
    model = tiny_model(arch)
    from pruning_core.blocks import find_blocks

    path, blocks = find_blocks(model)
    real = {(s.name, s.rows, s.cols, s.block) for s in model_slots(path, blocks, PruneSpec("wanda"), False)}
    from_config = {(s.name, s.rows, s.cols, s.block) for s in layout.layer_slots(model.config.to_dict(), ("lm_head",))}
    assert from_config == real


def test_layout_checks_refuse_before_anything_loads():
    config = layout.BUNDLED_CONFIGS["smollm2-135m"]
    dense_mlp = SparsityProfile.from_value({"rules": [{"match": "mlp", "sparsity": 0}]})
    with pytest.raises(SpecError, match="cannot be reached"):
        layout.check(config, PruneSpec("wanda", 0.7, profile=dense_mlp))
    layout.check(config, PruneSpec("wanda", 0.2, profile=dense_mlp))  # reachable: attention takes it all
    with pytest.raises(SpecError, match="matches no prunable layer"):
        layout.check(config, PruneSpec("wanda", 0.5, profile={"rules": [{"match": "fc1", "sparsity": 0}]}))
    layout.check({"model_type": "mamba"}, PruneSpec("wanda", 0.5, profile=dense_mlp))  # unknown family: the worker checks


def test_a_rule_shadowed_by_an_earlier_one_is_refused():
    profile = SparsityProfile.from_value({"rules": [{"match": "mlp", "sparsity": 0.5}, {"match": "mlp.down", "sparsity": 0}]})
    with pytest.raises(SpecError, match="earlier rule") as err:
        layout.check(layout.BUNDLED_CONFIGS["smollm2-135m"], PruneSpec("wanda", 0.5, profile=profile))
    assert err.value.param == "sparsity_profile.rules[1].match"


def test_a_packed_group_that_does_not_divide_the_inputs_is_refused_before_loading():
    from pruning_core.quant import QuantSpec

    config = layout.BUNDLED_CONFIGS["smollm2-135m"]  # inputs 576 and 1536
    with pytest.raises(SpecError, match="does not divide") as err:
        layout.check(config, PruneSpec("sparsegpt", 0.5, quant=QuantSpec(4, 100)))
    assert err.value.param == "quantize.group_size"
    layout.check(config, PruneSpec("sparsegpt", 0.5, quant=QuantSpec(4, 64)))
    layout.check(config, PruneSpec("sparsegpt", 0.5, quant=QuantSpec(4, 100, "dense")))  # dense pads the last group


def test_nm_with_rules_leaves_matched_layers_dense_and_patterns_the_rest():
    model = tiny_model("llama")
    spec = PruneSpec("sparsegpt", pattern=Pattern.parse("2:4"),
                     profile={"rules": [{"match": r"layers\.1\.mlp", "sparsity": 0}]})
    result = prune_model(model, calib(), spec, batch_size=3)
    for r in result.layers:
        assert r.sparsity == (0.0 if "layers.1.mlp" in r.name else pytest.approx(0.5))


def test_a_pathological_rule_pattern_is_answered_at_once():
    """(.*)*x backtracks for minutes in Python's re on a layer name; the API runs users' rules,
    so they are matched by `regex` under a time limit (spec.profile.MATCH_SECONDS)."""
    import time

    profile = SparsityProfile.from_value({"rules": [{"match": "(.*)*x", "sparsity": 0}]})
    t0 = time.monotonic()
    with pytest.raises(SpecError, match="matches no prunable layer"):
        layout.check(layout.BUNDLED_CONFIGS["smollm2-135m"], PruneSpec("wanda", 0.5, profile=profile))
    assert time.monotonic() - t0 < 5
