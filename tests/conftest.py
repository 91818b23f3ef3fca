"""Shared fixtures: the bundled model cache and a tiny model directory with the real tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import tiny_model

ROOT = Path(__file__).resolve().parents[1]


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
