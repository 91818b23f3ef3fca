"""Registry of pruning methods. The keys are the names used by the CLI, the API schema and the
job spec; add a method by adding one module and one entry here."""

from __future__ import annotations

from . import alps, magnitude, pgz, sparsegpt, wanda
from .base import LayerResult, Method

METHODS: dict[str, Method] = {
    "magnitude": magnitude.METHOD,
    "wanda": wanda.METHOD,
    "sparsegpt": sparsegpt.METHOD,
    "alps": alps.METHOD,
    "pgz": pgz.METHOD,
}

__all__ = ["METHODS", "LayerResult", "Method"]
