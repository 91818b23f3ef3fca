"""Packed int4 checkpoints (compressed-tensors pack-quantized): what transformers decodes is
exactly the grid values the job computed, pruned weights included."""

import json

import pytest
import torch

from helpers import tiny_model
from pruning_core import PruneSpec, export, pack, prune_model
from pruning_core.quant import QuantSpec


@pytest.mark.parametrize("group_size", [None, 32])
@pytest.mark.parametrize("method", ["sparsegpt", "pgz"])
def test_packed_round_trip_decodes_to_the_in_memory_grid(tmp_path, method, group_size):
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    model = tiny_model("llama")
    ids = torch.randint(0, 128, (4, 24), generator=torch.Generator().manual_seed(0))
    quant = QuantSpec(4, group_size)
    options = {"iters": 20} if method == "pgz" else {}
    result = prune_model(model, ids, PruneSpec(method, sparsity=0.5, quant=quant, options=options), batch_size=2)
    expected = {n: m.weight.detach().clone() for n, m in model.named_modules() if hasattr(m, "grid_scale")}
    assert len(expected) == 14
    logits = model(ids).logits
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    stored = {}
    export.publish(tmp_path / "out", model, None, result.masks, {},
                   finish=lambda d: stored.update(pack.finish_directory(d, quant, linears)))
    assert stored["format"] == "packed" and stored["quantized_layers"] == 14
    # 4-bit codes (0.25 of bf16) plus a float32 scale and a packed zero point per row, or per 32
    # columns: at 64 inputs a group's scale alone costs 1 bit per weight
    assert 0.25 < stored["ratio_to_bf16"] <= (0.3 if group_size is None else 0.33)
    config = json.loads((tmp_path / "out" / "model" / "config.json").read_text())["quantization_config"]
    weights = config["config_groups"]["group_0"]["weights"]
    assert weights["strategy"] == ("group" if group_size else "channel") and weights.get("group_size") == group_size

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model",
                                                  quantization_config=CompressedTensorsConfig(dequantize=True))
    modules = dict(loaded.named_modules())
    for name, W in expected.items():
        decoded = modules[name].weight
        assert torch.equal(decoded, W), name  # bit for bit: same codes, same scales
        assert torch.equal(decoded == 0, W == 0)
    assert torch.equal(loaded(ids).logits, logits)


def test_dense_format_keeps_float_weights_and_drops_the_grids(tmp_path):
    from safetensors.torch import load_file

    model = tiny_model("llama")
    ids = torch.randint(0, 128, (4, 24), generator=torch.Generator().manual_seed(0))
    quant = QuantSpec(4, None, "dense")
    result = prune_model(model, ids, PruneSpec("sparsegpt", sparsity=0.5, quant=quant), batch_size=2)
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    export.publish(tmp_path / "out", model, None, result.masks, {},
                   finish=lambda d: pack.finish_directory(d, quant, linears))
    tensors = load_file(tmp_path / "out" / "model" / "model.safetensors")
    assert not any(k.endswith((pack.GRID_SCALE, pack.GRID_ZERO)) for k in tensors)
    assert torch.equal(tensors["model.layers.0.mlp.up_proj.weight"], model.model.layers[0].mlp.up_proj.weight)
    assert "quantization_config" not in json.loads((tmp_path / "out" / "model" / "config.json").read_text())
