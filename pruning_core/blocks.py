"""Find a causal LM's decoder blocks and run them one at a time, without per-family code.

Blocks are found from the model's own `_no_split_modules` (the class names transformers keeps
whole when sharding): the ModuleList whose children are all of those classes. A tiny override
table covers models whose list is missing or misleading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import UnsupportedArchitecture
from .spec.layout import is_ignored

# model_type -> dotted path of the decoder-block ModuleList, for models where discovery fails
BLOCK_PATH_OVERRIDES: dict[str, str] = {}


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return (dotted name, ModuleList) of the decoder blocks."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in BLOCK_PATH_OVERRIDES:
        path = BLOCK_PATH_OVERRIDES[model_type]
        return path, model.get_submodule(path)
    block_classes = set(getattr(model, "_no_split_modules", None) or [])
    candidates = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.ModuleList) and len(mod) > 0
        and all(type(child).__name__ in block_classes for child in mod)
    ]
    if not candidates:
        raise UnsupportedArchitecture(
            f"cannot find decoder blocks in {type(model).__name__}: no ModuleList of {sorted(block_classes) or 'known block classes'}"
        )
    return max(candidates, key=lambda item: len(item[1]))


def target_linears(block: nn.Module, block_name: str, ignore: tuple[str, ...]) -> dict[str, nn.Linear]:
    """Every nn.Linear inside a block, keyed by its name relative to the block, minus `ignore`
    (substrings matched against both the relative and the absolute name)."""
    found = {}
    for name, mod in block.named_modules():
        if isinstance(mod, nn.Linear) and not is_ignored(name, f"{block_name}.{name}", ignore):
            found[name] = mod
    return found


def move(obj: Any, device: torch.device | str) -> Any:
    """Move tensors inside nested tuples/lists/dicts to `device`; everything else unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(move(o, device) for o in obj)
    if isinstance(obj, list):
        return [move(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: move(v, device) for k, v in obj.items()}
    return obj


class _Stop(Exception):
    pass


@dataclass
class BlockInputs:
    """Per batch: the hidden states entering a block and the keyword arguments the model passed
    to it (attention mask, rotary position embeddings, ...), kept on `store` device.
    `returns_tuple` records, once a block has run, whether blocks of this model return a tuple
    (OPT) or a bare tensor (LLaMA, Qwen2 in transformers 5)."""

    hidden: list[torch.Tensor]
    kwargs: list[dict[str, Any]]
    returns_tuple: bool | None = None


def activation_store(device: torch.device, nbytes: int) -> torch.device:
    """Where block activations (inputs + outputs, `nbytes` each) live: on the GPU when both use
    under half of its free memory, else on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if 2 * nbytes < free // 2:
            return device
    return torch.device("cpu")


def move_outside_blocks(model: nn.Module, blocks: nn.ModuleList, device) -> None:
    """Put every parameter and buffer that is not inside a decoder block on `device` (embeddings,
    rotary tables, final norm, lm_head) while the blocks stay where they are."""
    inside = {id(p) for p in blocks.parameters()} | {id(b) for b in blocks.buffers()}
    for mod in model.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and id(p) not in inside:
                p.data = p.data.to(device)
        for name, b in list(mod._buffers.items()):
            if b is not None and id(b) not in inside:
                mod._buffers[name] = b.to(device)


@torch.no_grad()
def capture_inputs(model, blocks: nn.ModuleList, batches: list[torch.Tensor], device, store) -> BlockInputs:
    """Run the model's embedding stage on each batch of token ids ([b, width]; widths may differ
    between batches) and stop at block 0, recording what block 0 would have received."""
    captured = BlockInputs(hidden=[], kwargs=[])

    def grab(module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        kwargs = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        captured.hidden.append(hidden.to(store))
        captured.kwargs.append(move(kwargs, store))
        raise _Stop

    home = model.get_input_embeddings().weight.device
    move_outside_blocks(model, blocks, device)
    handle = blocks[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        for batch in batches:
            try:
                model(input_ids=batch.to(device), use_cache=False)
            except _Stop:
                pass
    finally:
        handle.remove()
        move_outside_blocks(model, blocks, home)
    return captured


@torch.no_grad()
def run_block(block: nn.Module, inputs: BlockInputs, device, store) -> list[torch.Tensor]:
    """Run one block over every captured batch; returns its outputs (the next block's inputs)."""
    outputs = []
    for hidden, kwargs in zip(inputs.hidden, inputs.kwargs):
        out = block(hidden.to(device), **move(kwargs, device))
        inputs.returns_tuple = isinstance(out, (tuple, list))
        out = out[0] if inputs.returns_tuple else out
        outputs.append(out.to(store))
    return outputs
