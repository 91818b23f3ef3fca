"""Which local model directories jobs may read: those inside TOPIARY_ALLOWED_MODEL_ROOTS, judged
after every symlink and '..' is resolved. The API applies it when a directory is registered; the
worker applies it again where it opens the model, since a registered directory can be replaced
(by a symlink out of the root, say) after it was checked."""

from __future__ import annotations

import os
from pathlib import Path


class PathNotAllowed(ValueError):
    """`no_roots`: local models are disabled here; else the path leads outside every root."""

    def __init__(self, message: str, no_roots: bool = False):
        super().__init__(message)
        self.no_roots = no_roots


def allowed_model_dir(raw: str, roots: list[Path]) -> Path:
    """The real path of `raw`, or PathNotAllowed. Callers open the returned path, not `raw`."""
    if not roots:
        raise PathNotAllowed("no TOPIARY_ALLOWED_MODEL_ROOTS configured", no_roots=True)
    path = Path(os.path.realpath(raw))
    allowed = [Path(os.path.realpath(r)) for r in roots]
    if not any(path == root or root in path.parents for root in allowed):
        raise PathNotAllowed("the model directory is outside the allowed roots")
    return path
