"""pruning_core: layer-wise one-shot pruning of causal language models.

Importable without FastAPI, Celery or SQLAlchemy. Typical use::

    from pruning_core import PruneSpec, Pattern, prune_model
    spec = PruneSpec("sparsegpt", sparsity=0.5)
    result = prune_model(model, calib_ids, spec, device="cuda")

Names are imported on first use, so that `pruning_core.spec` (the torch-free job spec the API
imports) does not load torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Progress": "driver", "PruneResult": "driver", "prune_model": "driver", "METHODS": "methods",
    "Cancelled": "errors", "DataNotFound": "errors", "ModelNotFound": "errors", "SpecError": "errors",
    "TopiaryError": "errors", "UnsupportedArchitecture": "errors",
    "CalibrationSpec": "spec", "EvalSpec": "spec", "JobSpec": "spec", "Pattern": "spec", "PruneSpec": "spec",
    "QuantSpec": "spec",
}
__all__ = sorted(_WHERE)  # noqa: PLE0605 - the lazy-import table above is the one list of names


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'pruning_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
