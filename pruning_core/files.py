"""The one rule for the modes of published files, torch-free so the artifact store shares it.

safetensors writes its files 0600 and `tempfile` makes private staging directories, whatever
the umask; an inference server running as another user must be able to read a result."""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE, DIR_MODE = 0o644, 0o755


def make_readable(path: Path) -> Path:
    """Give `path` (a file, or a directory and everything under it) the published modes."""
    path = Path(path)
    if path.is_dir():
        path.chmod(DIR_MODE)
        for root, dirs, files in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(root, name), DIR_MODE)
            for name in files:
                os.chmod(os.path.join(root, name), FILE_MODE)
    else:
        path.chmod(FILE_MODE)
    return path
