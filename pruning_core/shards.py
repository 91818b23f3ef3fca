"""Write a model directory as it is produced: one safetensors shard per finished decoder block,
one for everything around the blocks, and the index that `from_pretrained` reads (the tensor
names are the model's own), plus config, generation config and tokenizer. Nothing of a block
stays in memory once its shard is written."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from .checkpoint import INDEX


class ShardWriter:
    def __init__(self, directory: Path, blocks: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.total = blocks + 1  # one shard per block, one for the rest
        self.weight_map: dict[str, str] = {}
        self.total_size = 0

    def _shard_name(self, number: int) -> str:
        return f"model-{number:05d}-of-{self.total:05d}.safetensors"

    def _write(self, number: int, tensors: dict) -> None:
        from safetensors.torch import save_file

        name = self._shard_name(number)
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(cpu, str(self.directory / name), metadata={"format": "pt"})
        for key, tensor in cpu.items():
            self.weight_map[key] = name
            self.total_size += tensor.numel() * tensor.element_size()

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
        index = {"metadata": {"total_size": self.total_size}, "weight_map": dict(sorted(self.weight_map.items()))}
        (self.directory / INDEX).write_text(json.dumps(index, indent=2) + "\n")
        model.config.save_pretrained(self.directory)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(self.directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(self.directory)
        return self.directory
