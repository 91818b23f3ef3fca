"""A Hugging Face model directory opened without materializing its weights: the module skeleton
on the meta device, and each module's tensors read from the memory-mapped safetensors shards
only when asked for, then released. Host memory then depends on what is loaded at once (a block,
the embeddings), not on the depth of the model."""

from __future__ import annotations

import ctypes
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from .blocks import find_blocks
from .errors import TopiaryError

log = logging.getLogger(__name__)
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class CheckpointError(TopiaryError):
    """Missing or corrupt shards, or a tensor that does not fit the model's config."""

    code = "corrupt-checkpoint"


def shard_map(directory: Path) -> dict[str, Path] | None:
    """tensor name -> shard file, from the index of a sharded checkpoint or the single file;
    None when the directory holds no safetensors checkpoint (then it cannot be streamed)."""
    if (directory / INDEX).is_file():
        try:
            weight_map = json.loads((directory / INDEX).read_text())["weight_map"]
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{directory / INDEX} is not a safetensors index: {exc}") from None
        return {name: directory / file for name, file in weight_map.items()}
    if (directory / SINGLE).is_file():
        with _opened(directory / SINGLE) as f:
            return {name: directory / SINGLE for name in f.keys()}
    return None


def _opened(path: Path):
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"shard {path.name} is missing from {path.parent}")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"shard {path} cannot be read: {exc}") from None


class LazyCheckpoint:
    """The model of `directory` as a skeleton whose tensors are loaded on demand.

    `dtype` "auto" keeps the checkpoint's dtype. `load(i)` fills decoder block i's parameters
    from the shards (memory-mapped: only the bytes read are touched) and `release(i)` returns
    them to the meta device; `load_outside_blocks` does the same for the embeddings, final norm
    and head. `live` counts the blocks materialized now and `peak_live` the most at once."""

    def __init__(self, directory: str | Path, dtype: str = "auto"):
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        from .models import DTYPES

        _bound_heap_growth()

        self.directory = Path(directory)
        files = shard_map(self.directory)
        if files is None:
            raise CheckpointError(f"{self.directory} has no safetensors checkpoint")
        self.files = files
        config = AutoConfig.from_pretrained(self.directory)
        self.dtype = DTYPES[dtype] if dtype != "auto" else self._stored_dtype()
        with init_empty_weights():  # parameters on meta; buffers (rotary tables) stay real
            self.model = AutoModelForCausalLM.from_config(config, dtype=self.dtype)
        self.model.tie_weights()  # as from_pretrained does: a tied head is the embedding's parameter
        self.model.eval()
        self.block_path, self.blocks = find_blocks(self.model)
        self.live, self.peak_live = 0, 0
        # canonical parameter name -> every (module, attribute) holding that parameter (a tied
        # head and embedding are one parameter in two modules); swaps must reach them all
        by_id: dict[int, list[tuple[nn.Module, str]]] = {}
        for module in self.model.modules():
            for attr, param in module._parameters.items():
                if param is not None:
                    by_id.setdefault(id(param), []).append((module, attr))
        self.owners = {name: by_id[id(p)] for name, p in self.model.named_parameters()}

    def reopen(self, directory: str | Path) -> None:
        """Read the same model's tensors from another directory from now on (the pruned shards
        a ShardWriter wrote, for the evaluation after pruning)."""
        files = shard_map(Path(directory))
        if files is None:
            raise CheckpointError(f"{directory} has no safetensors checkpoint")
        self.directory, self.files = Path(directory), files

    def _stored_dtype(self) -> torch.dtype:
        """The dtype the weights are stored in (read from a shard's header, no tensor data)."""
        first = next(iter(self.files))
        with _opened(self.files[first]) as f:
            stored = f.get_slice(first).get_dtype()
        return SAFETENSORS_DTYPES.get(stored, torch.float32)

    def _tensors(self, names: Iterable[str], files: dict[str, Path] | None = None) -> dict[str, torch.Tensor]:
        files = self.files if files is None else files
        by_file: dict[Path, list[str]] = {}
        for name in names:
            if name not in files:
                raise CheckpointError(f"tensor {name} is missing from the checkpoint in {self.directory}")
            by_file.setdefault(files[name], []).append(name)
        out = {}
        for path, wanted in by_file.items():
            with _opened(path) as f:
                for name in wanted:
                    out[name] = f.get_tensor(name)
        return out

    def _param(self, name: str) -> nn.Parameter:
        module, attr = self.owners[name][0]
        return module._parameters[attr]

    def _swap(self, name: str, tensor: torch.Tensor) -> None:
        """Put `tensor` in place of parameter `name` in every module that holds it."""
        param = nn.Parameter(tensor, requires_grad=False)
        for module, attr in self.owners[name]:
            module._parameters[attr] = param

    def _fill(self, names: list[str], files: dict[str, Path] | None = None) -> None:
        """Load the named (meta) parameters from the checkpoint (or from `files`)."""
        for name, tensor in self._tensors(names, files).items():
            want = self._param(name)
            if tuple(tensor.shape) != tuple(want.shape):
                raise CheckpointError(f"tensor {name} has shape {tuple(tensor.shape)}; the config "
                                      f"makes it {tuple(want.shape)}")
            self._swap(name, tensor.to(self.dtype))

    def _names(self, inside_blocks: int | None) -> list[str]:
        """Canonical names of block `inside_blocks`'s parameters, or (None) of those outside
        every block."""
        prefix = f"{self.block_path}."
        if inside_blocks is not None:
            mine = f"{prefix}{inside_blocks}."
            return [n for n in self.owners if n.startswith(mine)]
        return [n for n in self.owners if not n.startswith(prefix)]

    def load(self, index: int, files: dict[str, Path] | None = None) -> nn.Module:
        """Materialize decoder block `index` on the CPU and return it; from `files` (tensor name
        -> shard) instead when given: a block an earlier attempt already pruned and wrote."""
        self._fill([n for n in self._names(index) if self._param(n).is_meta], files)
        self.live += 1
        self.peak_live = max(self.peak_live, self.live)
        return self.blocks[index]

    def release(self, index: int) -> None:
        """Return block `index`'s parameters to the meta device (their memory is freed)."""
        self._unload(self._names(index))
        self.live -= 1
        _return_freed_memory()

    def load_outside_blocks(self) -> None:
        """Embeddings, final norm and head: what the model needs around its blocks. A head tied
        to the embeddings is the same parameter (it has one canonical name)."""
        self._fill([n for n in self._names(None) if self._param(n).is_meta])

    def release_outside_blocks(self) -> None:
        self._unload(self._names(None))

    def _unload(self, names: list[str]) -> None:
        for name in names:
            param = self._param(name)
            if not param.is_meta:
                self._swap(name, torch.empty_like(param, device="meta"))


# safetensors' dtype names (in shard headers) -> torch dtypes
SAFETENSORS_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
                      "I64": torch.int64, "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def _bound_heap_growth() -> None:
    """Serve every allocation of 1 MiB or more with its own mmap (glibc's M_MMAP_THRESHOLD fixed,
    no longer adapting upwards), so that freeing a block's float32 copies and activations gives
    the pages back at once. With glibc's adaptive threshold (up to 32 MiB) those tensors come
    from the heap instead, and its footprint crept up with every block: host memory grew with the
    depth of the model (bench/big_model.py). Process-wide, on purpose: a streamed job owns its
    process (the CLI, or the worker's single-use job process)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = -3 in malloc.h
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _return_freed_memory() -> None:
    """Hand the heap's free pages back to the OS after a block is done (glibc's malloc_trim).
    A block's float32 copies and statistics are freed in pieces below the mmap threshold, and
    without this the heap's footprint creeps up block after block (bench/big_model.py)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
