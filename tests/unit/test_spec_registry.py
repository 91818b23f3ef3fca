"""The torch-free job spec is the one owner of names, options and defaults: the implementations
register against it and must agree with it."""

import ast
import dataclasses
import inspect

import pytest

from pruning_core import data, methods, models, zeroshot
from pruning_core.errors import SpecError
from pruning_core.methods import METHODS
from pruning_core.spec import (
    BUNDLED_MODELS,
    CALIB_DATASETS,
    DECLARED,
    EVAL_DATASETS,
    ZERO_SHOT_TASKS,
    JobSpec,
    PruneSpec,
)


def test_every_declared_method_has_an_implementation_and_no_other():
    assert list(METHODS) == list(DECLARED)
    for name, method in METHODS.items():
        assert method.declared is DECLARED[name]


def _options_read(module) -> set[str]:
    """Attribute names read off the options object (`o.x` / `options.x`) in a method's module."""
    tree = ast.parse(inspect.getsource(module))
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("o", "options")}


@pytest.mark.parametrize("name", list(DECLARED))
def test_implementation_reads_exactly_the_declared_options(name):
    """An option the code reads but nobody declared (or declared and never read) fails here."""
    module = getattr(methods, name)
    declared = {o.name for o in DECLARED[name].options}
    assert _options_read(module) == declared


def _accepts(option, value) -> bool:
    try:
        option.check(value, "x")
        return value != option.default
    except SpecError:
        return False


@pytest.mark.parametrize("name", list(DECLARED))
def test_declared_options_round_trip_spec_dict_spec(name):
    declared = DECLARED[name]
    changed = {}
    for o in declared.options:  # every option moved off its default, inside its range
        if o.type is bool:
            changed[o.name] = not o.default
        elif o.choices:
            changed[o.name] = next(c for c in o.choices if c != o.default)
        else:
            candidates = [o.default * 2, o.default + 1, o.default - 1, 0.5] if o.type is int or o.default else [0.5]
            changed[o.name] = next(o.type(c) for c in candidates + [o.default / 2] if _accepts(o, o.type(c)))
    quantize = {"bits": 4, "group_size": None} if declared.supports_quant else None
    spec = JobSpec.from_dict({"model": "smollm2-135m", "method": name, "options": changed, "quantize": quantize})
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert spec.spec.method_options() == declared.options_class(**changed)
    assert dataclasses.asdict(spec.spec.method_options()) == spec.to_dict()["options"]


def test_defaults_live_in_the_spec():
    spec = JobSpec.from_dict({"model": "smollm2-135m", "method": "wanda"})
    assert spec.spec.sparsity == 0.5 and spec.evaluation.datasets == ("wikitext2",)
    assert spec.dtype == "auto" and spec.device == "auto"
    assert PruneSpec("wanda", pattern="2:4").sparsity == 0.5


def test_implementations_cover_exactly_the_declared_names():
    assert set(models.BUNDLED) == set(BUNDLED_MODELS)
    assert set(data.EVAL_FILES) == set(EVAL_DATASETS)
    assert set(data.CALIB_FILES) == set(CALIB_DATASETS)
    assert tuple(zeroshot.TASKS) == ZERO_SHOT_TASKS


def test_options_from_text_follow_the_declared_types():
    spec = JobSpec.from_dict({"model": "m", "method": "alps", "options": {"max_iter": "20", "refit": "false"}},
                             text_options=True)
    assert spec.spec.options["max_iter"] == 20 and spec.spec.options["refit"] is False
    for raw, field in [({"max_iter": "1.5"}, "options.max_iter"), ({"rho0": "abc"}, "options.rho0"),
                       ({"refit": "maybe"}, "options.refit"), ({"percdamp": "-1"}, "options.percdamp")]:
        with pytest.raises(SpecError) as err:
            JobSpec.from_dict({"model": "m", "method": "alps", "options": raw}, text_options=True)
        assert err.value.param == field


def test_the_bundled_layout_the_api_checks_against_is_the_real_model(smol_dir):
    """spec.layout.BUNDLED_CONFIGS lets the torch-free API check profile rules on the bundled model."""
    import json

    from pruning_core.spec import layout

    real = json.loads((smol_dir / "config.json").read_text())
    for name, config in layout.BUNDLED_CONFIGS.items():
        assert {k: real.get(k) for k in config} == config, name
