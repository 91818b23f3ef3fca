"""Plain helpers shared by tests (importable as `helpers`; conftest modules are not)."""

from __future__ import annotations

import torch


def tiny_config(arch: str, vocab: int = 128):
    """Hidden 64, 2 blocks: small enough for 2 cores, big enough to have every layer kind."""
    from transformers import LlamaConfig, OPTConfig, Qwen2Config

    common = {"vocab_size": vocab, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 128}
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
