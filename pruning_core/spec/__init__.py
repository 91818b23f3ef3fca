"""The torch-free job spec (see job.py) and the method declarations (methods.py, options.py).
Importing this package pulls in neither torch nor any web, queue or database package."""

from .job import (
    BUNDLED_MODELS,
    CALIB_DATASETS,
    DEFAULT_EVAL_DATASETS,
    DEFAULT_IGNORE,
    DEFAULT_SPARSITY,
    DTYPES,
    EVAL_DATASETS,
    HUB_ID,
    LIMITS,
    ZERO_SHOT_TASKS,
    CalibrationSpec,
    EvalSpec,
    JobSpec,
    Pattern,
    PruneSpec,
    QuantSpec,
)
from .methods import DECLARED, QUANT_METHODS
from .options import STATS, MethodSpec, Option
from .profile import LayerSlot, Rule, SparsityProfile

__all__ = [
    "BUNDLED_MODELS", "CALIB_DATASETS", "DECLARED", "DEFAULT_EVAL_DATASETS", "DEFAULT_IGNORE", "DEFAULT_SPARSITY", "DTYPES", "EVAL_DATASETS",
    "HUB_ID", "LIMITS", "QUANT_METHODS", "STATS", "ZERO_SHOT_TASKS", "CalibrationSpec", "EvalSpec", "JobSpec",
    "LayerSlot", "MethodSpec", "Option", "Pattern", "PruneSpec", "QuantSpec", "Rule", "SparsityProfile",
]
