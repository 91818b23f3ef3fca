"""What a streamed job keeps between attempts, so a retried job continues from the first
unfinished block: the pruned blocks' shards (written by shards.ShardWriter into `model/`), each
block's masks and layer reports, and the dense evaluation. `state.json` is replaced atomically
after each block's shard and masks are on disk, so it never names a block that is not there.
A state made for another job spec (`fingerprint`) is discarded."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .driver import LayerReport
from .export import save_masks

STATE = "state.json"


def fingerprint(*parts: Any) -> str:
    """A stable digest of what determines a job's result (model, spec, dtype, evaluation)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ResumeState:
    def __init__(self, directory: Path, key: str):
        self.directory, self.key = Path(directory), key
        self.blocks_done, self.reports = 0, []
        self.dense: dict | None = None
        self.plan: dict | None = None  # the per-layer targets (profiles.layer_targets), once planned
        state = self._read()
        if state is None or state.get("fingerprint") != key:
            shutil.rmtree(self.directory, ignore_errors=True)  # nothing usable: start clean
            self.directory.mkdir(parents=True)
            return
        self.blocks_done, self.dense, self.plan = state["blocks_done"], state.get("dense"), state.get("plan")
        self.reports = [LayerReport(**{**r, "shape": tuple(r["shape"])}) for r in state["layers"]]

    @property
    def model_dir(self) -> Path:
        return self.directory / "model"

    def _read(self) -> dict | None:
        try:
            return json.loads((self.directory / STATE).read_text())
        except (OSError, ValueError):
            return None

    def _masks_file(self, index: int) -> Path:
        return self.directory / f"masks-{index:05d}.safetensors"

    def _write(self) -> None:
        state = {"fingerprint": self.key, "blocks_done": self.blocks_done, "dense": self.dense, "plan": self.plan,
                 "layers": [dataclasses.asdict(r) for r in self.reports]}
        tmp = self.directory / f".{STATE}.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.directory / STATE)

    def record_dense(self, dense: dict) -> None:
        self.dense = dense
        self._write()

    def record_plan(self, plan: dict) -> None:
        self.plan = plan
        self._write()

    def record_block(self, index: int, reports: list[LayerReport],
                     masks: dict[str, tuple[np.ndarray, tuple[int, int]]]) -> None:
        """Block `index` is pruned and its shard written: keep its masks (on disk only: a 70B
        model's packed masks are gigabytes) and reports."""
        save_masks(masks, self._masks_file(index))
        self.reports, self.blocks_done = self.reports + list(reports), index + 1
        self._write()

    def mask_files(self) -> list[Path]:
        """The finished blocks' mask files, in block order (export.merge_mask_files joins them)."""
        return [self._masks_file(index) for index in range(self.blocks_done)]
