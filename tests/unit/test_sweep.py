"""Sweeps (pruning_core.sweep): one job at several settings, each point's checkpoint of its own,
the dense evaluation run once, progress counted over the whole sweep."""

from __future__ import annotations

import json

import pytest
import torch

from pruning_core import sweep
from pruning_core.spec import JobSpec


def test_a_sweep_prunes_each_point_and_reports_the_curve(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    job = JobSpec.from_dict({"model": str(tiny_model_dir), "method": "wanda", "sweep": [0.3, 0.6, "2:4"], "device": "cpu",
                             "calibration": {"source": "c4", "nsamples": 4, "seqlen": 32},
                             "evaluation": {"datasets": ["wikitext2"], "limit": 2}})
    seen = []
    report = sweep.run(job, tmp_path / "out", progress=seen.append)

    assert [p["setting"] for p in report["points"]] == ["0.3", "0.6", "2:4"]
    assert [p["sparsity_achieved"] for p in report["points"]] == pytest.approx([0.3, 0.6, 0.5], abs=0.01)  # per-row rounding on tiny rows
    dense = {p["perplexity"]["wikitext2"]["dense"] for p in report["points"]}
    assert len(dense) == 1 and None not in dense  # one dense evaluation, shared by every point
    stages = [p.stage for p in seen]
    assert "evaluating-dense" not in stages[stages.index("pruning"):]  # only before the first point prunes
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report

    pruned = [p["perplexity"]["wikitext2"]["pruned"] for p in report["points"]]
    for point, ppl in zip(report["points"], pruned):
        directory = tmp_path / "out" / point["path"]
        assert json.loads((directory / "report.json").read_text())["perplexity"]["wikitext2"]["pruned"] == ppl
        model = AutoModelForCausalLM.from_pretrained(directory / "model")
        weight = model.model.layers[0].self_attn.q_proj.weight
        assert (weight == 0).float().mean().item() == pytest.approx(point["sparsity_achieved"], abs=0.02)
    nm = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "points" / "2-of-4" / "model")
    groups = nm.model.layers[1].mlp.up_proj.weight.reshape(-1, 4)  # (rows*cols/4, 4): the 2:4 groups
    assert torch.all((groups != 0).sum(dim=1) <= 2)

    windows = [p.step for p in seen if p.stage == "evaluating" and p.step]
    assert windows and windows[-1] == (2, 2, "wikitext2 windows")  # evaluation shows its own progress

    pruning = [p for p in seen if p.stage == "pruning"]
    assert pruning[-1].layers_done == pruning[-1].layers_total == 3 * 14  # 3 points x 2 blocks x 7 layers
    assert pruning[-1].point == "3 of 3 (2:4)"
    assert [p.layers_done for p in pruning] == sorted(p.layers_done for p in pruning)


def test_the_worker_records_evaluation_steps_and_drops_them_after(tmp_path):
    from db.settings import Settings
    from pruning_core.driver import Progress
    from worker.runner import Runner

    runner = Runner(Settings(home=tmp_path), "pj_x", "me")
    before = {"layers_done": 14, "layers_total": 14, "percent": 100.0}
    out = runner._progress_dict(Progress("evaluating", 0, 1, step=(8, 64, "wikitext2 windows")), before)
    assert out["step"] == {"done": 8, "total": 64, "what": "wikitext2 windows"} and out["layers_done"] == 14
    assert "step" not in runner._progress_dict(Progress("saving", 0, 0), out)
