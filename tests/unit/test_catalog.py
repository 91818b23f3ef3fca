"""The API's torch-free name lists must match pruning_core's registries."""

from db import catalog
from pruning_core import METHODS, data, models, zeroshot


def test_methods_match_the_registry():
    assert set(catalog.METHODS) == set(METHODS)
    assert set(catalog.QUANT_METHODS) == {name for name, m in METHODS.items() if m.supports_quant}


def test_models_and_datasets_match():
    assert set(catalog.BUNDLED_MODELS) == set(models.BUNDLED)
    assert set(catalog.EVAL_DATASETS) == set(data.EVAL_DATASETS)
    assert set(catalog.CALIB_DATASETS) == set(data.CALIB_FILES)
    assert catalog.ZERO_SHOT_TASKS == tuple(zeroshot.TASKS)
    assert catalog.DTYPES == models.DTYPE_CHOICES
