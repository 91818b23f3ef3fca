"""Shared pieces of the fixed CPU quality protocol ("smol-cpu", ../shared/docs/benchmarks.md):
SmolLM2-135M in float32, 64×512 C4 calibration windows drawn with seed 0, WikiText-2 test
perplexity over the first 64 windows of 512 tokens."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from pruning_core import data, models
from pruning_core.evaluate import perplexity
from pruning_core.pipeline import versions

RESULTS = Path(__file__).resolve().parent / "results"


class Protocol:
    """Loads the model once; hands out fresh dense copies, the calibration ids and eval ids."""

    def __init__(self, nsamples: int = 64, seqlen: int = 512, windows: int = 64, seed: int = 0, split: str = "test"):
        self.nsamples, self.seqlen, self.windows, self.seed = nsamples, seqlen, windows, seed
        self.split = split
        self.model, self.tokenizer = models.load("smollm2-135m", "float32")
        self.dense_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        tokenize = lambda text: self.tokenizer(text).input_ids
        self.calib = data.calibration_ids("c4", tokenize, nsamples, seqlen, seed)  # [nsamples, seqlen]
        # "valid": WikiText-2's validation text, read as is like the test text, for choosing knobs
        # without looking at the windows the tables report
        text = data.eval_text("wikitext2") if split == "test" else \
            (data.data_dir() / data.CALIB_FILES["wikitext2"][0]).read_text(encoding="utf-8")
        self.eval_ids = self.tokenizer(text, return_tensors="pt").input_ids[0]

    def fresh_model(self):
        """The dense model, restored in place (cheaper than reloading)."""
        self.model.load_state_dict(self.dense_state)
        return self.model

    def ppl(self, model) -> float:
        return perplexity(model, self.eval_ids, self.seqlen, self.windows)[0]

    def describe(self) -> dict:
        return {
            "model": "smollm2-135m (float32)",
            "calibration": f"{self.nsamples}x{self.seqlen} c4 seed {self.seed}",
            "eval": f"wikitext2 {self.split}, first {self.windows} windows of {self.seqlen}",
            "eval_tokens_total": int(self.eval_ids.numel()),
            "threads": torch.get_num_threads(),
            "cpu": cpu_model(),
            # the kernels torch picked: a different ISA rounds differently, and 70% sparsity on a
            # 135M model amplifies that into perplexity differences of a few percent
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "versions": versions(),
        }


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


@functools.cache  # once per process: the code that started the run, however many times it writes
def code_version() -> str:
    """The commit the benchmarked code is at, "+dirty" with uncommitted changes ("unknown" outside git).
    TOPIARY_CODE_VERSION overrides it where the tree was copied without .git (a lent GPU host)."""
    if os.environ.get("TOPIARY_CODE_VERSION"):
        return os.environ["TOPIARY_CODE_VERSION"]
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"commit {rev}" + ("+dirty" if dirty else "")


code_version()  # read when the benchmark starts: later commits or edits did not make its numbers


def write_json(name: str, payload: dict) -> Path:
    path = RESULTS / name  # an absolute name is used as is
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"code": code_version(), **payload}  # which code made the numbers, for before/after tables
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("-|-".join("-" * w for w in widths))
