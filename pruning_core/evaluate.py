"""Perplexity, the GPTQ way: tokenize the test text once, cut it into non-overlapping windows of
`seqlen` tokens from the start, average each window's mean next-token NLL, exponentiate.

A model that fits on the device is evaluated whole. One that does not (a 70B model on one GPU,
which the block-sequential driver can still prune) is evaluated the way it was pruned: the
windows' hidden states go through one decoder block at a time, then the model's own head (final
norm, lm_head) runs with the block list swapped for a replay of the last block's outputs.
`map_batches` is that choice for any per-batch forward; zero-shot scoring uses it too.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .blocks import activation_store, capture_inputs, run_block
from .source import Resident, Streamed

ProgressFn = Callable[[int, int], None]


def _window_nll(logits: torch.Tensor, batch: torch.Tensor) -> list[float]:
    """Mean next-token NLL of each window in the batch."""
    logits = logits.float()  # [b, seqlen, vocab]
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),  # [b*(seqlen-1), vocab]
        batch[:, 1:].reshape(-1),  # [b*(seqlen-1)]
        reduction="none",
    ).view(batch.shape[0], -1)  # [b, seqlen-1]
    return nll.mean(dim=1).tolist()


def fits_on(model: nn.Module, device: torch.device, headroom: float = 0.8) -> bool:
    """Whether the whole model fits in `headroom` of the device's free memory (always on the CPU)."""
    if device.type != "cuda":
        return True
    elsewhere = sum(p.numel() * p.element_size() for p in model.parameters() if p.device != device)
    free, _ = torch.cuda.mem_get_info(device)
    return elsewhere < headroom * free


@contextlib.contextmanager
def on_device(model: nn.Module, device) -> Iterator[None]:
    """The whole model on `device` for the duration, back where it was afterwards."""
    home = next(model.parameters()).device
    model.to(device)
    try:
        yield
    finally:
        model.to(home)


BatchFn = Callable[[nn.Module, torch.Tensor, int], Any]
# Block-sequential evaluation keeps every batch's hidden states between blocks. All of HellaSwag
# through a 70B model would be ~50 GB of them, so batches go in groups of at most this many bytes
# of hidden states, and the blocks visit the device once per group.
BLOCKWISE_GROUP_BYTES = 4 << 30


def _offset(progress: ProgressFn, base: int, rows: int, done: int, _total: int) -> None:
    """A group's replay reports rows of that group; the caller counts from `base`, the rows before it."""
    progress(base + done, rows)


def _groups(batches: list[torch.Tensor], bytes_per_token: int, budget: int) -> Iterator[list[torch.Tensor]]:
    group: list[torch.Tensor] = []
    size = 0
    for batch in batches:
        need = batch.numel() * bytes_per_token
        if group and size + need > budget:
            yield group
            group, size = [], 0
        group.append(batch)
        size += need
    if group:
        yield group


def map_batches(model: nn.Module, batches: list[torch.Tensor], device, fn: BatchFn,
                blockwise: bool | None = None, progress: ProgressFn | None = None, source=None) -> list:
    """[fn(model, batch on `device`, batch index) for each batch], where calling the model (or its
    base_model) inside `fn` gives what the whole model on `device` gives. `blockwise` None picks
    block-sequential evaluation only when the model does not fit; a streamed `source` (its
    blocks read from disk one at a time) is always block-sequential. Progress counts rows."""
    device = torch.device(device)
    if isinstance(source, Streamed):
        blockwise = True
    if blockwise is None:
        blockwise = not fits_on(model, device)
    rows = sum(b.shape[0] for b in batches)
    out: list = []
    done = 0
    if not blockwise:
        with on_device(model, device):
            for batch in batches:
                out.append(fn(model, batch.to(device), len(out)))
                done += batch.shape[0]
                if progress:
                    progress(done, rows)
        return out
    source = source or Resident(model)
    bytes_per_token = model.get_input_embeddings().weight.shape[1] * next(model.parameters()).element_size()
    for group in _groups(batches, bytes_per_token, BLOCKWISE_GROUP_BYTES):
        with _replayed(source, group, device, progress and functools.partial(_offset, progress, done, rows)):
            for batch in group:
                out.append(fn(model, batch.to(device), len(out)))
        done += sum(b.shape[0] for b in group)
        if progress:
            progress(done, rows)
    return out


class _Replay(nn.Module):
    """Stands in for the whole block list: hands back, batch by batch, what the last real block
    produced, in the form the model's own blocks return."""

    def __init__(self, outputs: list[torch.Tensor], as_tuple: bool, device):
        super().__init__()
        self.outputs, self.as_tuple, self.device, self.next = outputs, as_tuple, device, 0

    def forward(self, hidden, *args, **kwargs):
        out = self.outputs[self.next].to(self.device)
        self.next += 1
        return (out,) if self.as_tuple else out


@contextlib.contextmanager
def _replayed(source, batches: list[torch.Tensor], device, progress: ProgressFn | None) -> Iterator[None]:
    """Push every batch through one decoder block at a time (each block visits the device once,
    fetched from and returned to `source`), then, for the duration, swap the block list for a
    replay of the last block's outputs and put the embeddings, final norm and lm_head on
    `device`: the model's forward, called once per batch in order, finishes the job."""
    model, blocks, block_path = source.model, source.blocks, source.block_path
    rows = sum(b.shape[0] for b in batches)
    tokens = sum(b.numel() for b in batches)
    store = activation_store(device, tokens * model.get_input_embeddings().weight.shape[1] * 4)
    with source.outside(device):
        inputs = capture_inputs(model, blocks, batches, device, store)
    for index in range(len(blocks)):
        block = source.open(index, device)
        try:
            inputs.hidden = run_block(block, inputs, device, store)
        finally:
            source.close(index)
        if progress:  # the blocks are the bulk of the work: report them as rows done
            progress(rows * (index + 1) // (len(blocks) + 1), rows)
    parent_path, _, attr = block_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, nn.ModuleList([_Replay(inputs.hidden, bool(inputs.returns_tuple), device)]))
    try:
        with source.outside(device):  # embeddings, final norm, lm_head
            yield
    finally:
        setattr(parent, attr, blocks)


@torch.no_grad()
def perplexity(model, token_ids: torch.Tensor, seqlen: int, limit: int | None = None, device="cpu",
               batch_size: int = 4, progress: ProgressFn | None = None,
               blockwise: bool | None = None, source=None) -> tuple[float, int]:
    """Returns (perplexity, windows used). `token_ids` is the 1-D tokenized test text.
    `blockwise` None picks block-sequential evaluation only when the model does not fit."""
    windows = token_ids.numel() // seqlen
    if limit is not None:
        windows = min(windows, limit)
    if windows == 0:
        raise ValueError(f"evaluation text has fewer than {seqlen} tokens")
    ids = token_ids[: windows * seqlen].view(windows, seqlen)  # [windows, seqlen]
    nll = map_batches(model, list(ids.split(batch_size)), device,
                      lambda m, batch, _: _window_nll(m(input_ids=batch, use_cache=False).logits, batch),
                      blockwise, progress, source)
    losses = [x for batch in nll for x in batch]
    return math.exp(sum(losses) / len(losses)), windows
