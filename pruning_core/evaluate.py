"""Perplexity, the GPTQ way: tokenize the test text once, cut it into non-overlapping windows of
`seqlen` tokens from the start, average each window's mean next-token NLL, exponentiate."""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch


@torch.no_grad()
def perplexity(model, token_ids: torch.Tensor, seqlen: int, limit: Optional[int] = None, device="cpu",
               batch_size: int = 4, progress: Optional[Callable[[int, int], None]] = None) -> tuple[float, int]:
    """Returns (perplexity, windows used). `token_ids` is the 1-D tokenized test text."""
    windows = token_ids.numel() // seqlen
    if limit is not None:
        windows = min(windows, limit)
    if windows == 0:
        raise ValueError(f"evaluation text has fewer than {seqlen} tokens")
    ids = token_ids[: windows * seqlen].view(windows, seqlen)  # [windows, seqlen]
    model_device = next(model.parameters()).device
    model.to(device)
    losses = []
    try:
        for start in range(0, windows, batch_size):
            batch = ids[start : start + batch_size].to(device)
            logits = model(input_ids=batch, use_cache=False).logits.float()  # [b, seqlen, vocab]
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),  # [b*(seqlen-1), vocab]
                batch[:, 1:].reshape(-1),  # [b*(seqlen-1)]
                reduction="none",
            ).view(batch.shape[0], -1)  # [b, seqlen-1]
            losses.extend(nll.mean(dim=1).tolist())
            if progress:
                progress(len(losses), windows)
    finally:
        model.to(model_device)
    return math.exp(sum(losses) / len(losses)), windows
