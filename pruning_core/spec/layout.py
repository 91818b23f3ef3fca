"""A model's prunable layers (names and shapes) from its config.json alone, torch-free: what the
API and the CLI check a sparsity profile against before a job is queued or a weight is read.

Only the families whose module names we know are listed; for any other model the profile is
checked when the worker opens the model (profiles.layer_slots, the same planner)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .job import PruneSpec
from .profile import LayerSlot, fixed_by_rules, plan

# the attention + gated-MLP layout of LLaMA and the families that copied its module names
_LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "olmo2")
# what the bundled model's config says (tests/unit/test_spec_registry.py compares it to the real one)
BUNDLED_CONFIGS = {
    "smollm2-135m": {"model_type": "llama", "num_hidden_layers": 30, "hidden_size": 576, "intermediate_size": 1536,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
                     "tie_word_embeddings": True, "dtype": "float32"},
}


def read_config(ref: str) -> dict | None:
    """The config.json of a bundled model (built in) or of a model directory on this machine;
    None for anything else (a hub id, a file, an unreadable directory)."""
    if ref in BUNDLED_CONFIGS:
        return BUNDLED_CONFIGS[ref]
    try:
        return json.loads((Path(ref) / "config.json").read_text())
    except (OSError, ValueError):
        return None


def is_ignored(name: str, full: str, ignore: tuple[str, ...]) -> bool:
    """The one rule for `ignore`: a substring of the layer's name inside its block or of its full name."""
    return any(pat in name or pat in full for pat in ignore)


def block_linears(config: Mapping[str, Any]) -> tuple[str, list[tuple[str, int, int]]] | None:
    """(block path, [(name in block, rows, cols)]) or None for an unknown family."""
    kind = config.get("model_type")
    hidden = config.get("hidden_size")
    if kind in _LLAMA_LIKE:
        heads = config["num_attention_heads"]
        kv = config.get("num_key_value_heads") or heads
        head_dim = config.get("head_dim") or hidden // heads
        inter = config["intermediate_size"]
        return "model.layers", [
            ("self_attn.q_proj", heads * head_dim, hidden), ("self_attn.k_proj", kv * head_dim, hidden),
            ("self_attn.v_proj", kv * head_dim, hidden), ("self_attn.o_proj", hidden, heads * head_dim),
            ("mlp.gate_proj", inter, hidden), ("mlp.up_proj", inter, hidden), ("mlp.down_proj", hidden, inter)]
    if kind == "opt":
        ffn = config["ffn_dim"]
        return "model.decoder.layers", [
            ("self_attn.k_proj", hidden, hidden), ("self_attn.v_proj", hidden, hidden),
            ("self_attn.q_proj", hidden, hidden), ("self_attn.out_proj", hidden, hidden),
            ("fc1", ffn, hidden), ("fc2", hidden, ffn)]
    return None


def layer_slots(config: Mapping[str, Any], ignore: tuple[str, ...]) -> list[LayerSlot] | None:
    """Every pruned layer of a model with this config, or None when the family is not known here."""
    try:
        found = block_linears(config)
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    if found is None:
        return None
    path, linears = found
    return [LayerSlot(f"{path}.{i}.{name}", rows, cols, i)
            for i in range(int(config["num_hidden_layers"])) for name, rows, cols in linears
            if not is_ignored(name, f"{path}.{i}.{name}", ignore)]


def check(config: Mapping[str, Any] | None, spec: PruneSpec) -> None:
    """Raise SpecError now for what the job would refuse on this model after loading it: a
    profile rule that matches no layer, rules that leave the other layers a share they cannot
    take (OWL's per-block offsets need the weights and the data, but never make a reachable
    target unreachable), a packed quantization group that does not divide a layer's inputs."""
    slots = layer_slots(config, spec.ignore) if config else None
    if not slots:
        return
    quant = spec.quant
    if quant is not None and quant.format == "packed" and quant.group_size:
        bad = sorted({s.cols for s in slots if s.cols % quant.group_size})
        if bad:
            raise SpecError(f"quantize.group_size: {quant.group_size} does not divide the layers' input sizes {bad}, "
                            "which the packed format needs; choose a divisor or quantize.format dense",
                            "quantize.group_size")
    if spec.profile.is_uniform:
        return
    if spec.pattern.is_nm:
        fixed_by_rules(slots, spec.profile)
    else:
        plan(slots, spec.sparsity, spec.profile)
