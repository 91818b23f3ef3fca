"""Block sources: where the driver's block loop and block-wise evaluation get each decoder block
from, and what happens to it afterwards.

* `Resident`: a model already in memory (the library's `prune_model(model, ...)`): a block is
  moved to the compute device for its turn and back home after.
* `Streamed`: a checkpoint directory opened lazily (checkpoint.LazyCheckpoint): a block is read
  from the shards for its turn and released after, and a finished (pruned) block goes to a
  ShardWriter. At most the block in hand (and, while the next loads, one more) is in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .blocks import find_blocks, move_outside_blocks
from .checkpoint import LazyCheckpoint
from .pack import detach_grids
from .shards import ShardWriter


class Resident:
    def __init__(self, model: nn.Module):
        self.model = model
        self.block_path, self.blocks = find_blocks(model)
        self._home: dict[int, torch.device] = {}

    def open(self, index: int, device, pruned: bool = False) -> nn.Module:
        """Block `index` on `device`; `pruned`: as an earlier attempt left it (streamed only)."""
        if pruned:
            raise ValueError("a model in memory has no earlier attempt to resume from")
        block = self.blocks[index]
        self._home[index] = next(block.parameters()).device  # where it lives between visits
        return block.to(device)

    def close(self, index: int) -> None:
        self.blocks[index].to(self._home.pop(index))

    def finished(self, index: int) -> None:
        """Block `index` is pruned: in memory there is nothing more to do."""

    @contextlib.contextmanager
    def outside(self, device) -> Iterator[None]:
        """Embeddings, final norm and head on `device` for the duration, then back."""
        home = self.model.get_input_embeddings().weight.device
        move_outside_blocks(self.model, self.blocks, device)
        try:
            yield
        finally:
            move_outside_blocks(self.model, self.blocks, home)


class Streamed(Resident):
    def __init__(self, checkpoint: LazyCheckpoint, sink: ShardWriter | None = None):
        self.checkpoint, self.sink = checkpoint, sink
        self.model, self.block_path, self.blocks = checkpoint.model, checkpoint.block_path, checkpoint.blocks

    def open(self, index: int, device, pruned: bool = False) -> nn.Module:
        return self.checkpoint.load(index, self.sink.files() if pruned else None).to(device)

    def close(self, index: int) -> None:
        self.checkpoint.release(index)

    def finished(self, index: int) -> None:
        if self.sink is not None:
            self.sink.write_block(f"{self.block_path}.{index}", self.blocks[index])
        detach_grids(self.blocks[index])  # in the shard now; the skeleton keeps no tensors

    @contextlib.contextmanager
    def outside(self, device) -> Iterator[None]:
        self.checkpoint.load_outside_blocks()
        try:
            with super().outside(device):
                yield
        finally:
            self.checkpoint.release_outside_blocks()
