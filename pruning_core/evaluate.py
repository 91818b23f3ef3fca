"""Perplexity, the GPTQ way: tokenize the test text once, cut it into non-overlapping windows of
`seqlen` tokens from the start, average each window's mean next-token NLL, exponentiate.

A model that fits on the device is evaluated whole. One that does not (a 70B model on one GPU,
which the block-sequential driver can still prune) is evaluated the way it was pruned: the
windows' hidden states go through one decoder block at a time, then the model's own head (final
norm, lm_head) runs with the block list swapped for a replay of the last block's outputs.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Optional

import torch
from torch import nn

from .blocks import activation_store, capture_inputs, find_blocks, move_outside_blocks, run_block

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


def _losses(model, ids: torch.Tensor, device, batch_size: int, progress: Optional[ProgressFn]) -> list[float]:
    """Window NLLs of a model whose embeddings and head are on `device`, batch by batch."""
    losses: list[float] = []
    for start in range(0, ids.shape[0], batch_size):
        batch = ids[start : start + batch_size].to(device)  # [b, seqlen]
        losses += _window_nll(model(input_ids=batch, use_cache=False).logits, batch)
        if progress:
            progress(len(losses), ids.shape[0])
    return losses


def _nll_whole(model, ids: torch.Tensor, device, batch_size: int, progress: Optional[ProgressFn]) -> list[float]:
    with on_device(model, device):
        return _losses(model, ids, device, batch_size, progress)


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


def _nll_blockwise(model, ids: torch.Tensor, device, batch_size: int, progress: Optional[ProgressFn]) -> list[float]:
    block_path, blocks = find_blocks(model)
    store = activation_store(device, ids.numel() * model.get_input_embeddings().weight.shape[1] * 4)
    inputs = capture_inputs(model, blocks, ids, device, store, batch_size)
    for index, block in enumerate(blocks):
        home = next(block.parameters()).device
        block.to(device)
        inputs.hidden = run_block(block, inputs, device, store)
        block.to(home)
        if progress:  # the blocks are the bulk of the work: report them as windows done
            progress(ids.shape[0] * (index + 1) // (len(blocks) + 1), ids.shape[0])
    parent_path, _, attr = block_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, nn.ModuleList([_Replay(inputs.hidden, bool(inputs.returns_tuple), device)]))
    home = model.get_input_embeddings().weight.device
    move_outside_blocks(model, blocks, device)  # embeddings, final norm, lm_head
    try:
        losses = _losses(model, ids, device, batch_size, None)
    finally:
        setattr(parent, attr, blocks)
        move_outside_blocks(model, blocks, home)
    if progress:
        progress(ids.shape[0], ids.shape[0])
    return losses


@torch.no_grad()
def perplexity(model, token_ids: torch.Tensor, seqlen: int, limit: Optional[int] = None, device="cpu",
               batch_size: int = 4, progress: Optional[ProgressFn] = None,
               blockwise: Optional[bool] = None) -> tuple[float, int]:
    """Returns (perplexity, windows used). `token_ids` is the 1-D tokenized test text.
    `blockwise` None picks block-sequential evaluation only when the model does not fit."""
    windows = token_ids.numel() // seqlen
    if limit is not None:
        windows = min(windows, limit)
    if windows == 0:
        raise ValueError(f"evaluation text has fewer than {seqlen} tokens")
    ids = token_ids[: windows * seqlen].view(windows, seqlen)  # [windows, seqlen]
    device = torch.device(device)
    if blockwise is None:
        blockwise = not fits_on(model, device)
    run = _nll_blockwise if blockwise else _nll_whole
    losses = run(model, ids, device, batch_size, progress)
    return math.exp(sum(losses) / len(losses)), windows
