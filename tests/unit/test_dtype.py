"""dtype "auto" (the default everywhere) keeps the checkpoint's own dtype: a bf16 model is
pruned with float32 layer math but held and written in bf16; an explicit dtype still converts."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from helpers import tiny_model


@pytest.fixture(scope="module")
def bf16_dir(tmp_path_factory, smol_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_dir)
    out = tmp_path_factory.mktemp("bf16-llama")
    tiny_model("llama", vocab=len(tok)).to(torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _run(model_dir, out, **job):
    from pruning_core import CalibrationSpec, PruneSpec, pipeline

    spec = PruneSpec(method="sparsegpt", sparsity=0.5, calibration=CalibrationSpec("c4", 4, 32, 0))
    return pipeline.run(pipeline.JobSpec(model=str(model_dir), spec=spec, device="cpu",
                                     evaluation=pipeline.EvalSpec(datasets=("wikitext2",), limit=2), **job), out)


def _stored_dtypes(model_dir) -> set:
    found = set()
    for shard in model_dir.glob("model*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            found |= {f.get_slice(name).get_dtype() for name in f.keys()}
    return found


def test_auto_keeps_bfloat16_from_input_to_output(bf16_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from pruning_core.export import load_masks

    report = _run(bf16_dir, tmp_path / "auto")
    assert (report["dtype"], report["dtype_stored"]) == ("auto", "bfloat16")
    assert _stored_dtypes(tmp_path / "auto" / "model") == {"BF16"}
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "auto" / "model", dtype="auto")
    assert model.dtype == torch.bfloat16
    modules = dict(model.named_modules())
    for name, keep in load_masks(tmp_path / "auto" / "masks.safetensors").items():
        assert torch.all(modules[name].weight[~keep] == 0)
    assert json.loads((tmp_path / "auto" / "report.json").read_text())["sparsity_achieved"] == pytest.approx(0.5, abs=0.01)


def test_an_explicit_dtype_still_converts(bf16_dir, tmp_path):
    report = _run(bf16_dir, tmp_path / "f32", dtype="float32")
    assert report["dtype_stored"] == "float32" and _stored_dtypes(tmp_path / "f32" / "model") == {"F32"}


def test_an_unknown_dtype_is_a_spec_error(bf16_dir, tmp_path):
    from pruning_core.errors import SpecError

    with pytest.raises(SpecError, match="float64"):
        _run(bf16_dir, tmp_path / "x", dtype="float64")
