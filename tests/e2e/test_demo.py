"""The README's main job: `topiary demo` starts the embedded service (SQLite, filesystem broker),
prunes the bundled model over REST, prints the report and stops the service again. Run here with
a small calibration set so it stays fast on 2 cores."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file


@pytest.mark.slow
def test_demo_prunes_the_bundled_model_through_the_embedded_service(tmp_path, smol_dir):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(smol_dir.parent)  # the converted model, not a second conversion
    env = {k: v for k, v in os.environ.items() if k not in ("TOPIARY_DATABASE_URL", "TOPIARY_BROKER_URL")}
    env["TOPIARY_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "topiary.cli", "demo", "--method", "wanda", "--nsamples", "2",
                           "--seqlen", "64", "--eval-limit", "1"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "(succeeded, attempt 1)" in proc.stdout
    assert "sparsity 0.5000 achieved" in proc.stdout
    dense, pruned = map(float, re.search(r"dense ([\d.]+) -> pruned ([\d.]+)", proc.stdout).groups())
    assert dense < pruned  # Wanda at 50% costs perplexity; equal numbers would mean nothing was pruned
    checkpoint = Path(re.search(r"^checkpoint\s+(\S+)$", proc.stdout, re.MULTILINE).group(1))
    name = "model.layers.0.self_attn.q_proj.weight"  # the checkpoint is streamed: sharded, with an index
    shard = json.loads((checkpoint / "model.safetensors.index.json").read_text())["weight_map"][name]
    q = load_file(checkpoint / shard)[name]
    assert float((q == 0).float().mean()) == pytest.approx(0.5, abs=1e-3)
    # the embedded defaults were used, and the service's own chatter went to its log file
    assert (home / "topiary.db").exists() and (home / "broker").is_dir()
    assert "celery" not in proc.stderr.lower()
    assert (home / "logs" / "demo-service.log").stat().st_size > 0
    assert "service stopped" in proc.stderr
