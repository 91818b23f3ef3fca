"""Quality gates (pruning_core.spec.gates): the spec refuses what could never be measured, and the
verdict names each broken gate and by how much."""

from __future__ import annotations

import math

import pytest

from pruning_core.errors import SpecError
from pruning_core.spec import JobSpec
from pruning_core.spec.gates import Gates, failures, verdict

BASE = {"model": "smollm2-135m", "method": "wanda", "evaluation": {"datasets": ["wikitext2", "ptb"], "tasks": ["piqa"]}}


def _summary(wiki=(20.0, 30.0), ptb=(40.0, 50.0), acc=((0.70, 0.63),)):
    return {"perplexity": {"wikitext2": {"dense": wiki[0], "pruned": wiki[1]}, "ptb": {"dense": ptb[0], "pruned": ptb[1]}},
            "zero_shot": {f"t{i}": {"dense": {"acc": d}, "pruned": {"acc": p}} for i, (d, p) in enumerate(acc)}}


def test_gates_round_trip_through_the_spec():
    job = JobSpec.from_dict({**BASE, "gates": {"max_ppl_ratio": 1.6, "max_regression": 0.02}})
    assert job.gates == Gates(max_ppl_ratio=1.6, max_regression=0.02)
    assert job.to_dict()["gates"] == {"max_ppl_ratio": 1.6, "max_regression": 0.02}
    assert JobSpec.from_dict(job.to_dict()) == job
    assert JobSpec.from_dict(BASE).to_dict()["gates"] is None and JobSpec.from_dict({**BASE, "gates": {}}).gates is None


@pytest.mark.parametrize("gates, evaluation, field", [
    ({"max_ppl_ratio": 0.5}, {}, "gates.max_ppl_ratio"),  # a pruned model is never better than 0.5x
    ({"max_ppl": float("nan")}, {}, "gates.max_ppl"),
    ({"min_zero_shot_retained": "high"}, {}, "gates.min_zero_shot_retained"),
    ({"max_regression": -0.1}, {}, "gates.max_regression"),
    ({"max_speed": 2}, {}, "gates.max_speed"),
    ({"max_ppl_ratio": 2.0}, {"dense": False}, "gates.max_ppl_ratio"),
    ({"min_zero_shot_retained": 0.9}, {"tasks": []}, "gates.min_zero_shot_retained"),
    ({"max_ppl": 100}, {"datasets": [], "tasks": ["piqa"]}, "gates.max_ppl"),
])
def test_gates_that_cannot_hold_are_refused_with_their_field(gates, evaluation, field):
    with pytest.raises(SpecError) as err:
        JobSpec.from_dict({**BASE, "evaluation": {**BASE["evaluation"], **evaluation}, "gates": gates})
    assert field in [e.param for e in err.value.all()], err.value.fields()


def test_all_gates_pass():
    out = verdict(Gates(max_ppl_ratio=1.6, max_ppl=60, min_zero_shot_retained=0.85), _summary())
    assert out["passed"] and len(out["checks"]) == 5  # ratio and ppl on two datasets, zero-shot once
    assert all(c["by"] <= 0 for c in out["checks"])


def test_each_failure_says_which_gate_and_by_how_much():
    out = verdict(Gates(max_ppl_ratio=1.4), _summary())
    wiki, ptb = out["checks"]
    assert not out["passed"] and not wiki["passed"] and ptb["passed"]
    assert wiki["value"] == pytest.approx(1.5) and wiki["by"] == pytest.approx(0.1) and ptb["by"] == pytest.approx(-0.15)
    assert failures(out) == "max_ppl_ratio on wikitext2: 1.5 breaks the limit <= 1.4"

    out = verdict(Gates(max_ppl=45), _summary())
    assert [c["passed"] for c in out["checks"]] == [True, False] and out["checks"][1]["by"] == pytest.approx(5)

    out = verdict(Gates(min_zero_shot_retained=0.95), _summary(acc=((0.8, 0.7), (0.6, 0.58))))
    (check,) = out["checks"]
    assert check["value"] == pytest.approx(0.64 / 0.70) and not check["passed"]
    assert check["by"] == pytest.approx(0.95 - 0.64 / 0.70)


def test_a_diverged_model_fails_every_gate_it_meets():
    out = verdict(Gates(max_ppl=1e9, max_ppl_ratio=1e9), _summary(wiki=(20.0, math.inf)))
    assert not out["passed"] and [c["passed"] for c in out["checks"]] == [False, False, True, True]


def test_regression_against_the_previous_job():
    gates = Gates(max_regression=0.05)
    first = verdict(gates, _summary(), None, None)
    assert first["passed"] and first["checks"][0].get("skipped")  # the first night: nothing to compare with
    before = _summary(wiki=(20.0, 28.0), ptb=(40.0, 49.0))
    out = verdict(gates, _summary(), before, "pj_prev")
    wiki, ptb = out["checks"]
    assert wiki["value"] == pytest.approx(30 / 28 - 1) and not wiki["passed"] and ptb["passed"]
    assert out["compared_with"] == "pj_prev" and "(vs pj_prev)" in failures(out)
