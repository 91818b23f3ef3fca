"""pruning_core: layer-wise one-shot pruning of causal language models.

Importable without FastAPI, Celery or SQLAlchemy. Typical use::

    from pruning_core import PruneSpec, Pattern, prune_model
    spec = PruneSpec("sparsegpt", sparsity=0.5)
    result = prune_model(model, calib_ids, spec, device="cuda")
"""

from .driver import Progress, PruneResult, prune_model
from .errors import Cancelled, DataNotFound, ModelNotFound, SpecError, TopiaryError, UnsupportedArchitecture
from .methods import METHODS
from .spec import CalibrationSpec, Pattern, PruneSpec

__all__ = [
    "METHODS", "CalibrationSpec", "Cancelled", "DataNotFound", "ModelNotFound", "Pattern", "Progress",
    "PruneResult", "PruneSpec", "SpecError", "TopiaryError", "UnsupportedArchitecture", "prune_model",
]
