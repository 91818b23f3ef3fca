"""Write a pruning result: `model/` (HF safetensors directory, zeros in pruned positions),
`masks.safetensors` (bit-packed keep masks per layer) and `report.json`, published atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .files import make_readable

MASK_FORMAT = "topiary-packed-keep-mask-v1"


def save_masks(masks: dict[str, tuple[np.ndarray, tuple[int, int]]], path: Path) -> None:
    """One uint8 tensor per layer: np.packbits of the flattened keep mask (1 = kept, big-endian
    bit order). The metadata maps each layer name to its [m, n] shape."""
    tensors = {name: torch.from_numpy(bits.copy()) for name, (bits, _) in masks.items()}
    meta = {"format": MASK_FORMAT, "shapes": json.dumps({name: list(shape) for name, (_, shape) in masks.items()})}
    save_file(tensors, str(path), metadata=meta)


def merge_mask_files(files: list[Path], dest: Path, chunk: int = 1 << 24) -> None:
    """Join per-block `save_masks` files into one masks file without holding the masks in memory:
    the safetensors layout (8-byte little-endian header length, JSON header, raw bytes) is written
    directly, and each tensor's bytes are copied through in chunks."""
    entries, shapes, sources, offset = {}, {}, [], 0
    for path in files:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        meta = header.pop("__metadata__", {})
        shapes.update(json.loads(meta["shapes"]))
        for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            begin, end = info["data_offsets"]
            entries[name] = {"dtype": info["dtype"], "shape": info["shape"], "data_offsets": [offset, offset + end - begin]}
            sources.append((path, 8 + size + begin, end - begin))
            offset += end - begin
    header = {"__metadata__": {"format": MASK_FORMAT, "shapes": json.dumps(shapes)}, **entries}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(dest, "wb") as out:
        out.write(len(text).to_bytes(8, "little") + text)
        for path, start, length in sources:
            with open(path, "rb") as f:
                f.seek(start)
                while length:
                    piece = f.read(min(chunk, length))
                    out.write(piece)
                    length -= len(piece)


def load_packed_masks(path: str | Path) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
    """Inverse of `save_masks`, still packed: layer name -> (packed bits, [m, n])."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        if meta.get("format") != MASK_FORMAT:
            raise ValueError(f"{path} is not a {MASK_FORMAT} file")
        shapes = json.loads(meta["shapes"])
        return {name: (f.get_tensor(name).numpy(), tuple(shapes[name])) for name in f.keys()}


def load_masks(path: str | Path) -> dict[str, torch.Tensor]:
    """Inverse of `save_masks`: layer name -> bool keep mask of its original shape."""
    out = {}
    for name, (packed, (m, n)) in load_packed_masks(path).items():
        bits = np.unpackbits(packed, count=m * n)
        out[name] = torch.from_numpy(bits.astype(bool)).view(m, n)  # [m, n]
    return out


def check_output_dir(out: Path) -> None:
    """Refuse to overwrite a non-empty directory: results of an earlier run are never lost."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output {out} is a file; name a new or empty directory")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output directory {out} exists and is not empty")


def publish(out: Path, model, tokenizer, masks, report: dict[str, Any], finish=None) -> Path:
    """Write everything to a temporary sibling directory, then rename it into place. `finish`
    (model directory -> None) runs on the staged model before the report is written: the
    quantized checkpoint's packing, which may add to the report."""

    def write_model(target: Path) -> None:
        model.save_pretrained(target)
        if tokenizer is not None:
            tokenizer.save_pretrained(target)

    return _publish(Path(out), write_model, masks, report, finish)


def publish_dir(out: Path, model_dir: Path, masks, report: dict[str, Any], finish=None) -> Path:
    """Like `publish`, for a model directory already written (shard by shard): it is moved in."""
    return _publish(Path(out), lambda target: os.replace(model_dir, target), masks, report, finish)


def _publish(out: Path, write_model, masks, report: dict[str, Any], finish=None) -> Path:
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        write_model(tmp / "model")
        if finish is not None:
            finish(tmp / "model")
        if isinstance(masks, dict):
            save_masks(masks, tmp / "masks.safetensors")
        else:  # per-block mask files written as the blocks finished
            merge_mask_files(masks, tmp / "masks.safetensors")
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        make_readable(tmp)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
