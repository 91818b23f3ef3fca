"""`topiary prune --estimate` and the cost model against what real runs measure: the CLI prunes a
tiny and a medium random LLaMA in fresh processes, and each report's peak resident memory must lie
within the documented error of the estimate made from config.json alone."""

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "topiary.cli"]
PEAK_ERROR = 0.25  # the README's stated error of the host-memory estimate on CPU runs


def topiary(*args, timeout=600):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def medium_dir(tmp_path_factory, smol_dir):
    """A random LLaMA of 4 blocks 512 wide (46M parameters with the real 49k vocabulary)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smol_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=512, intermediate_size=1536, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512)
    out = tmp_path_factory.mktemp("medium-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_estimate_prints_the_needs_without_reading_weights(tiny_model_dir, tmp_path):
    proc = topiary("prune", "--model", str(tiny_model_dir), "--method", "alps", "--device", "cpu", "--estimate")
    assert proc.returncode == 0, proc.stderr
    for line in ("host mem", "disk", "time", "fits this machine"):
        assert line in proc.stdout
    refused = topiary("prune", "--model", "nobody/no-such-model", "--estimate")
    assert refused.returncode == 2 and "cannot estimate" in refused.stderr


@pytest.mark.parametrize("model", ["tiny", "medium"])
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_estimated_peak_memory_is_within_the_documented_error(model, method, tiny_model_dir, medium_dir, tmp_path):
    from pruning_core.spec import JobSpec
    from pruning_core.spec.estimate import estimate

    path = tiny_model_dir if model == "tiny" else medium_dir
    args = ["--model", str(path), "--method", method, "--nsamples", "8", "--seqlen", "128", "--eval", "wikitext2",
            "--eval-limit", "2", "--device", "cpu"]
    proc = topiary("prune", *args, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    measured = json.loads((tmp_path / "out" / "report.json").read_text())["peak_memory"]["host_bytes"]
    job = JobSpec.from_dict({"model": str(path), "method": method, "calibration": {"nsamples": 8, "seqlen": 128},
                             "evaluation": {"datasets": ["wikitext2"], "limit": 2}, "device": "cpu"})
    predicted = estimate(json.loads((path / "config.json").read_text()), job, "cpu").host_bytes
    assert abs(predicted - measured) / measured <= PEAK_ERROR, (predicted, measured)
