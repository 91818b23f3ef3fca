"""Shared fixtures: tiny random causal LMs of three architectures and synthetic layer problems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(arch: str, vocab: int = 128):
    """Hidden 64, 2 blocks: small enough for 2 cores, big enough to have every layer kind."""
    from transformers import LlamaConfig, OPTConfig, Qwen2Config

    common = dict(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128)
    if arch == "llama":
        return LlamaConfig(intermediate_size=128, num_key_value_heads=2, **common)
    if arch == "qwen2":
        return Qwen2Config(intermediate_size=128, num_key_value_heads=2, **common)
    if arch == "opt":
        return OPTConfig(ffn_dim=128, word_embed_proj_dim=64, **common)
    raise ValueError(arch)


def tiny_model(arch: str, seed: int = 0, vocab: int = 128):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(arch, vocab)).eval()


def correlated_inputs(n: int, tokens: int, seed: int) -> torch.Tensor:
    """X = Z·A with a decaying spectrum (benchmarks.md's synthetic recipe), as [tokens, n]."""
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(tokens, n, generator=g)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    A = Q * (torch.arange(1, n + 1, dtype=torch.float32) ** -0.7)  # column j scaled by j^-0.7
    return Z @ A.T + 0.05 * torch.randn(tokens, n, generator=g)


def layer_problem(m: int, n: int, seed: int, tokens: int = 2048):
    """(W [m, n], X [tokens, n], LayerStats with H = XᵀX/N)."""
    from pruning_core.stats import GramAccumulator

    g = torch.Generator().manual_seed(seed + 1000)
    W = torch.randn(m, n, generator=g)
    X = correlated_inputs(n, tokens, seed)
    acc = GramAccumulator(n, torch.device("cpu"))
    acc.add(X)
    return W, X, acc.finish()


@pytest.fixture(scope="session")
def topiary_home(tmp_path_factory) -> Path:
    """Where bundled models are cached. Reuses the user's cache when there is one so the GGUF
    conversion (about 25 s) runs once per machine, not once per test run."""
    home = Path(os.environ.get("TOPIARY_HOME", "~/.topiary")).expanduser()
    os.environ["TOPIARY_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def smol_dir(topiary_home) -> Path:
    from pruning_core import models

    return models.bundled_dir("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_dir) -> Path:
    """A tiny random LLaMA saved as an HF directory with the real SmolLM2 tokenizer, so the CLI and
    the pipeline can run end to end in seconds."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_dir)
    model = tiny_model("llama", vocab=len(tok))
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
