"""Deployable checkpoints for jointly quantized jobs: compressed-tensors `pack-quantized`.

While a job runs, each quantized linear carries its grid as two buffers (`grid_scale` [m, G],
`grid_zero` [m, G], unsigned zero points), so they travel with the block into its shard and
survive a resume. When the model directory is final, `finish_directory` rewrites its shards one
at a time: a quantized layer's float weight and grid become `weight_packed` (the integer codes,
packed into int32 by compressed-tensors), `weight_scale`, `weight_zero_point` and `weight_shape`,
and config.json gets the `quantization_config` that transformers and vLLM read (W4A16). With the
"dense" format the grids are only dropped: the float weights already sit on the grid.

Pruned weights are exact zeros on the grid (its zero point is an integer), so they decode to 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import INDEX
from .quant import Grid
from .spec import QuantSpec

GRID_SCALE, GRID_ZERO = "grid_scale", "grid_zero"
SINGLE = "model.safetensors"


def attach_grid(lin: nn.Linear, grid: Grid) -> None:
    lin.register_buffer(GRID_SCALE, grid.scale.to(torch.float32))
    lin.register_buffer(GRID_ZERO, grid.zero.to(torch.int16))  # [0, 2^bits - 1]


def detach_grids(module: nn.Module) -> None:
    """Drop the grid buffers once a block's shard holds them (a 70B model's group grids would
    otherwise pile up in the skeleton)."""
    for sub in module.modules():
        for name in (GRID_SCALE, GRID_ZERO):
            sub._buffers.pop(name, None)


def _scheme(quant: QuantSpec):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    strategy = "group" if quant.group_size else "channel"
    args = QuantizationArgs(num_bits=quant.bits, type="int", symmetric=False, strategy=strategy,
                            group_size=quant.group_size)
    return QuantizationScheme(targets=["Linear"], weights=args)


def _shards(directory: Path) -> tuple[list[Path], dict | None]:
    index_path = directory / INDEX
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        return [directory / name for name in sorted(set(index["weight_map"].values()))], index
    return [directory / SINGLE], None


def finish_directory(directory: Path, quant: QuantSpec, linears: list[str]) -> dict[str, Any]:
    """Rewrite `directory`'s shards in `quant.format` ("packed" or "dense"); `linears` are the
    model's Linear module names (those without a grid are listed as not quantized). Returns what
    the report says about the stored form: quantized layer bytes against their bf16 size."""
    from safetensors.torch import load_file, save_file

    directory = Path(directory)
    shards, index = _shards(directory)
    scheme = _scheme(quant) if quant.format == "packed" else None
    quantized: list[str] = []
    stored = bf16 = 0
    for shard in shards:
        tensors = load_file(str(shard))
        original = set(tensors)
        grids = [k[: -len(GRID_SCALE) - 1] for k in tensors if k.endswith("." + GRID_SCALE)]
        if not grids:
            continue
        for module in grids:
            scale, zero = tensors.pop(f"{module}.{GRID_SCALE}"), tensors.pop(f"{module}.{GRID_ZERO}")
            weight = tensors[f"{module}.weight"]
            bf16 += weight.numel() * 2
            if scheme is None:
                stored += weight.numel() * weight.element_size()
            else:
                packed = _pack(tensors.pop(f"{module}.weight"), scale, zero, quant, scheme)
                tensors.update({f"{module}.{k}": v for k, v in packed.items()})
                stored += sum(v.numel() * v.element_size() for v in packed.values())
            quantized.append(module)
        tmp = shard.with_name(f".{shard.name}.tmp")
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, shard)
        if index is not None:
            for key in original - set(tensors):
                index["weight_map"].pop(key, None)
            index["weight_map"].update({key: shard.name for key in tensors})
    if index is not None:
        index["metadata"]["total_size"] = sum(p.stat().st_size for p in shards)
        (directory / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    if scheme is not None and quantized:
        _write_config(directory, scheme, sorted(set(linears) - set(quantized)))
    return {"format": quant.format, "quantized_layers": len(quantized), "quantized_bytes": stored,
            "quantized_bf16_bytes": bf16, "ratio_to_bf16": stored / bf16 if bf16 else None}


def _pack(weight: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, quant: QuantSpec, scheme) -> dict:
    """compressed-tensors stores signed codes: q − 2^(bits−1), with the zero point shifted alike."""
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor

    shift = 2 ** (quant.bits - 1)
    state = {"weight": weight.to(torch.float32), "weight_scale": scale,
             "weight_zero_point": (zero.to(torch.int32) - shift).to(torch.int8)}
    return PackedQuantizationCompressor.compress(state, scheme)


def _write_config(directory: Path, scheme, ignore: list[str]) -> None:
    from compressed_tensors.quantization import QuantizationConfig

    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    qc = QuantizationConfig(config_groups={"group_0": scheme}, format="pack-quantized",
                            quantization_status="compressed", ignore=ignore)
    config["quantization_config"] = {**qc.model_dump(exclude_none=True), "quant_method": "compressed-tensors"}
    config_path.write_text(json.dumps(config, indent=2) + "\n")
