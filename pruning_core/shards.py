"""Write a model directory as it is produced: one safetensors shard per finished decoder block,
one for everything around the blocks, and the index that `from_pretrained` reads (the tensor
names are the model's own), plus config, generation config and tokenizer. Nothing of a block
stays in memory once its shard is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from .checkpoint import INDEX, SAFETENSORS_DTYPES


class ShardWriter:
    """Shards already in `directory` (an earlier attempt's blocks) are adopted as written."""

    def __init__(self, directory: Path, blocks: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.total = blocks + 1  # one shard per block, one for the rest
        self.weight_map: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        for shard in sorted(self.directory.glob("model-*-of-*.safetensors")):
            self._adopt(shard)

    def _adopt(self, shard: Path) -> None:
        from safetensors import safe_open

        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():
                slice_ = f.get_slice(key)
                numel = 1
                for dim in slice_.get_shape():
                    numel *= dim
                self.weight_map[key] = shard.name
                self.sizes[key] = numel * SAFETENSORS_DTYPES[slice_.get_dtype()].itemsize

    def files(self) -> dict[str, Path]:
        """tensor name -> shard, for reading back what was written."""
        return {key: self.directory / name for key, name in self.weight_map.items()}

    def _shard_name(self, number: int) -> str:
        return f"model-{number:05d}-of-{self.total:05d}.safetensors"

    def _write(self, number: int, tensors: dict) -> None:
        """One shard, written under a temporary name and renamed: a shard present is whole."""
        from safetensors.torch import save_file

        name = self._shard_name(number)
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        tmp = self.directory / f".{name}.tmp"
        save_file(cpu, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, self.directory / name)
        for key, tensor in cpu.items():
            self.weight_map[key] = name
            self.sizes[key] = tensor.numel() * tensor.element_size()

    def write_block(self, prefix: str, block: nn.Module) -> None:
        """Block `prefix` (e.g. model.layers.7) as shard 8."""
        index = int(prefix.rsplit(".", 1)[1])
        self._write(index + 1, {f"{prefix}.{k}": v for k, v in block.state_dict().items()})

    def write_outside(self, model: nn.Module, block_path: str) -> None:
        """Embeddings, final norm, head and persistent buffers outside the blocks, as the last
        shard. named_parameters lists a tied head once (under the embedding's name), which is
        how save_pretrained stores it too."""
        inside = f"{block_path}."
        persistent = set(model.state_dict())
        tensors = {n: p for n, p in model.named_parameters() if not n.startswith(inside)}
        tensors.update({n: b for n, b in model.named_buffers() if not n.startswith(inside) and n in persistent})
        self._write(self.total, tensors)

    def finish(self, model: nn.Module, tokenizer=None) -> Path:
        """The index, config and tokenizer: the directory is now a loadable model."""
        index = {"metadata": {"total_size": sum(self.sizes.values())}, "weight_map": dict(sorted(self.weight_map.items()))}
        (self.directory / INDEX).write_text(json.dumps(index, indent=2) + "\n")
        model.config.save_pretrained(self.directory)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(self.directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(self.directory)
        return self.directory
