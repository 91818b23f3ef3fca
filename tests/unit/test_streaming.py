"""A model directory streamed block by block (checkpoint.LazyCheckpoint + source.Streamed +
shards.ShardWriter) gives what the same model loaded whole gives, bit for bit, while at most one
or two decoder blocks are ever materialized; its output is an HF-sharded directory transformers
loads as is. Tiny random LLaMA, OPT and Qwen2, saved in bfloat16 over several shards."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import tiny_config


def _save(tmp_path, arch, layers=2, tokenizer=None):
    """A bf16 checkpoint over several shards (with `tokenizer` saved beside it and its vocabulary)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = tiny_config(arch, len(tokenizer) if tokenizer else 128)
    cfg.num_hidden_layers = layers
    directory = tmp_path / f"{arch}-{layers}"
    AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16).save_pretrained(
        directory, max_shard_size="2MB" if tokenizer else "60KB")
    assert len(list(directory.glob("model-*.safetensors"))) >= 3  # really sharded
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def _spec(dense_target: float = 0.0):
    from pruning_core import CalibrationSpec, PruneSpec

    return PruneSpec(method="sparsegpt", sparsity=0.5, calibration=CalibrationSpec("c4", 4, 16, 0),
                     dense_target=dense_target)


@pytest.mark.parametrize("arch", ["llama", "opt", "qwen2"])
def test_streamed_equals_in_memory_bit_for_bit(tmp_path, arch):
    from transformers import AutoModelForCausalLM

    from pruning_core.checkpoint import LazyCheckpoint
    from pruning_core.driver import prune_blocks, prune_model
    from pruning_core.shards import ShardWriter
    from pruning_core.source import Streamed

    directory = _save(tmp_path, arch)
    calib = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(1))
    whole = AutoModelForCausalLM.from_pretrained(directory, dtype="auto")
    expected = prune_model(whole, calib, _spec())

    checkpoint = LazyCheckpoint(directory)
    source = Streamed(checkpoint, ShardWriter(tmp_path / "out", len(checkpoint.blocks)))
    got = prune_blocks(source, calib, _spec())
    with source.outside("cpu"):
        source.sink.write_outside(checkpoint.model, checkpoint.block_path)
    source.sink.finish(checkpoint.model)

    assert got.masks.keys() == expected.masks.keys()
    for name, (bits, shape) in expected.masks.items():
        assert got.masks[name][1] == shape and (got.masks[name][0] == bits).all()
    written = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype="auto")
    assert written.dtype == torch.bfloat16
    reference = whole.state_dict()
    for name, tensor in written.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    assert checkpoint.peak_live == 1 and checkpoint.live == 0


def test_peak_blocks_in_memory_does_not_grow_with_depth(tmp_path):
    """Counted on the loader, through calibration, pruning and both evaluations."""
    from pruning_core import pipeline

    peaks = {}
    for layers in (2, 6):
        job = pipeline.JobSpec(model=str(_save(tmp_path, "llama", layers, _tokenizer())), spec=_spec(), device="cpu",
                           evaluation=pipeline.EvalSpec(datasets=("wikitext2",), limit=2))
        report = pipeline.run(job, tmp_path / f"out-{layers}")
        assert report["streamed"] is True
        peaks[layers] = report["peak_blocks_in_memory"]
    assert peaks == {2: 1, 6: 1}


def _tokenizer():
    from transformers import AutoTokenizer

    from pruning_core import models

    return AutoTokenizer.from_pretrained(models.bundled_dir("smollm2-135m"))


def test_streamed_job_output_loads_and_reproduces_its_perplexity(tmp_path):
    from transformers import AutoModelForCausalLM

    from pruning_core import data, pipeline
    from pruning_core.evaluate import perplexity
    from pruning_core.export import load_masks

    tok = _tokenizer()
    directory = _save(tmp_path, "llama", 2, tok)
    job = pipeline.JobSpec(model=str(directory), spec=_spec(), device="cpu",
                       evaluation=pipeline.EvalSpec(datasets=("wikitext2",), limit=4))
    report = pipeline.run(job, tmp_path / "out")
    model_dir = tmp_path / "out" / "model"
    assert json.loads((model_dir / "model.safetensors.index.json").read_text())["weight_map"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    assert model.dtype == torch.bfloat16 and report["dtype_stored"] == "bfloat16"
    modules = dict(model.named_modules())
    for name, keep in load_masks(tmp_path / "out" / "masks.safetensors").items():
        assert torch.all(modules[name].weight[~keep] == 0)
    ids = tok(data.eval_text("wikitext2"), return_tensors="pt").input_ids[0]
    value, _ = perplexity(model, ids, 16, 4)
    assert value == pytest.approx(report["perplexity"]["wikitext2"]["pruned"], rel=1e-3)


def test_missing_or_mismatched_shards_are_clear_errors(tmp_path):
    from safetensors.torch import load_file, save_file

    from pruning_core.checkpoint import CheckpointError, LazyCheckpoint

    directory = _save(tmp_path, "llama")
    shards = sorted(directory.glob("model-*.safetensors"))
    checkpoint = LazyCheckpoint(directory)
    shards[-1].unlink()
    with pytest.raises(CheckpointError, match="missing") as caught:
        for i in range(len(checkpoint.blocks)):
            checkpoint.load(i)
        checkpoint.load_outside_blocks()
    assert caught.value.code == "corrupt-checkpoint"

    directory = _save(tmp_path / "again", "llama")
    first = min(directory.glob("model-*.safetensors"))
    tensors = load_file(first)
    name = next(iter(tensors))
    tensors[name] = tensors[name][..., :-1].contiguous()  # one column short of what the config says
    save_file(tensors, first, metadata={"format": "pt"})
    checkpoint = LazyCheckpoint(directory)
    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.load_outside_blocks()
        for i in range(len(checkpoint.blocks)):
            checkpoint.load(i)


class Killed(Exception):
    """Stands for the job process dying mid-block (the real SIGKILL is in tests/integration)."""


@pytest.mark.parametrize("dense_target", [0.0, 0.5])
def test_a_resumed_run_continues_at_the_first_unfinished_block_and_matches(tmp_path, dense_target):
    """With the dense target the replay also rebuilds the unpruned stream, from the checkpoint."""
    from safetensors.torch import load_file

    from pruning_core import pipeline
    from pruning_core.export import load_masks

    directory = _save(tmp_path, "llama", 4, _tokenizer())
    job = pipeline.JobSpec(model=str(directory), spec=_spec(dense_target), device="cpu",
                       evaluation=pipeline.EvalSpec(datasets=("wikitext2",), limit=2))
    straight = pipeline.run(job, tmp_path / "straight")

    per_block = 7
    seen = []

    def dies_in_block_2(p):
        seen.append(p)
        if p.stage == "pruning" and p.layers_done == 2 * per_block + 1:
            raise Killed

    resume = tmp_path / "resume"
    with pytest.raises(Killed):
        pipeline.run(job, tmp_path / "first", progress=dies_in_block_2, resume_dir=resume)
    again = []
    report = pipeline.run(job, tmp_path / "resumed", progress=again.append, resume_dir=resume)
    resumed = [p for p in again if p.stage == "resuming"]
    assert [p.blocks for p in resumed] == [(2, 4)]
    pruned_layers = [p.layer.name for p in again if p.stage == "pruning" and p.layer is not None]
    assert pruned_layers and all(".layers.2." in n or ".layers.3." in n for n in pruned_layers)  # 0, 1 not redone
    # the ETA's pace counts this run's layers only: the resumed blocks took no layer time here
    first = next(p for p in again if p.stage == "pruning")
    assert first.layers_done == 2 * per_block + 1 and first.pace[0] == 1
    assert first.eta_seconds == pytest.approx(first.pace[1] * (4 * per_block - first.layers_done))
    assert not any(p.stage == "evaluating-dense" for p in again)  # the dense evaluation was kept too
    assert report["perplexity"] == straight["perplexity"]

    def tensors(out):
        merged = {}
        for shard in (out / "model").glob("model-*.safetensors"):
            merged.update(load_file(shard))
        return merged

    a, b = tensors(tmp_path / "straight"), tensors(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = load_masks(tmp_path / "straight" / "masks.safetensors"), load_masks(tmp_path / "resumed" / "masks.safetensors")
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


def test_a_resumed_owl_run_keeps_the_first_attempts_plan(tmp_path):
    """The per-layer targets are planned once (a dense pass over every block) and kept in the
    resume state: a retry does not measure again and prunes each layer to the same target."""
    import dataclasses

    from pruning_core import pipeline
    from pruning_core.export import load_masks

    directory = _save(tmp_path, "llama", 3, _tokenizer())
    spec = dataclasses.replace(_spec(), method="wanda", options={}, sparsity=0.6, profile="owl")
    job = pipeline.JobSpec(model=str(directory), spec=spec, device="cpu", evaluation=pipeline.EvalSpec(datasets=()))
    straight = pipeline.run(job, tmp_path / "straight")

    def dies_in_block_1(p):
        if p.stage == "pruning" and p.layers_done == 8:
            raise Killed

    resume = tmp_path / "resume"
    with pytest.raises(Killed):
        pipeline.run(job, tmp_path / "first", progress=dies_in_block_1, resume_dir=resume)
    stages = []
    report = pipeline.run(job, tmp_path / "resumed", progress=lambda p: stages.append(p.stage), resume_dir=resume)
    assert "resuming" in stages and "measuring-outliers" not in stages
    assert [layer["target"] for layer in report["layers"]] == [layer["target"] for layer in straight["layers"]]
    assert report["sparsity_profile"] == straight["sparsity_profile"]
    ma, mb = load_masks(tmp_path / "straight" / "masks.safetensors"), load_masks(tmp_path / "resumed" / "masks.safetensors")
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


def test_a_state_left_by_another_job_is_not_resumed(tmp_path):
    from pruning_core import CalibrationSpec, PruneSpec, pipeline

    directory = _save(tmp_path, "llama", 2, _tokenizer())
    resume = tmp_path / "resume"

    def dies(p):
        if p.stage == "pruning" and p.layers_done == 8:
            raise Killed

    job = pipeline.JobSpec(model=str(directory), spec=_spec(), device="cpu", evaluation=pipeline.EvalSpec(datasets=()))
    with pytest.raises(Killed):
        pipeline.run(job, tmp_path / "a", progress=dies, resume_dir=resume)
    other = pipeline.JobSpec(model=str(directory), device="cpu", evaluation=pipeline.EvalSpec(datasets=()),
                         spec=PruneSpec(method="wanda", sparsity=0.5, calibration=CalibrationSpec("c4", 4, 16, 0)))
    stages = []
    pipeline.run(other, tmp_path / "b", progress=lambda p: stages.append(p.stage), resume_dir=resume)
    assert "resuming" not in stages


@pytest.fixture
def small_disk(tmp_path):
    """A 192 KiB tmpfs: room for the job's first shards, not for the whole output."""
    import os
    import subprocess

    where = tmp_path / "small-disk"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_disk_that_fills_up_mid_job_is_a_clear_error_and_leaves_nothing(tmp_path, small_disk):
    from pruning_core import pipeline
    from pruning_core.errors import DiskFull

    directory = _save(tmp_path, "llama", 4, _tokenizer())  # about 1 MB of bf16 shards
    job = pipeline.JobSpec(model=str(directory), spec=_spec(), device="cpu", evaluation=pipeline.EvalSpec(datasets=()))
    with pytest.raises(DiskFull) as err:
        pipeline.run(job, small_disk / "out")
    assert err.value.code == "disk-full" and "no space left" in str(err.value)
    assert list(small_disk.iterdir()) == []  # no output, no work directory, no partial file
    pipeline.run(job, tmp_path / "out")  # the same job on a disk with room: the process carries on
    assert (tmp_path / "out" / "model" / "config.json").is_file()
