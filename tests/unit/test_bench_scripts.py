"""The GPU benchmark scripts in their CPU smoke mode, so CI (which never has a GPU) keeps them
runnable: tiny shapes, real solvers, JSON checked."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run(script: str, *args: str, out: Path) -> dict:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--device", "cpu", *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_gpu_layer_smoke(tmp_path):
    data = run("gpu_layer.py", "--shapes", "48x96", "--tokens", "3000", "--settings", "0.6,2:4", out=tmp_path / "l.json")
    rows = {(r["setting"], r["method"]): r for r in data["rows"]}
    assert len(rows) == 8 and data["env"]["device"] == "cpu"
    for setting in ("0.6", "2:4"):
        assert rows[setting, "alps"]["rel_error"] < rows[setting, "sparsegpt"]["rel_error"] < rows[setting, "wanda"]["rel_error"]
        assert rows[setting, "alps"]["setup_seconds"] > 0 and rows[setting, "wanda"]["setup_seconds"] == 0


def test_gpu_model_smoke(tmp_path):
    data = run("gpu_model.py", "--preset", "tiny", "--methods", "sparsegpt,alps", out=tmp_path / "m.json")
    assert [r["method"] for r in data["rows"]] == ["sparsegpt", "alps"]
    for r in data["rows"]:
        assert abs(r["sparsity"] - 0.5) < 1e-3 and set(r["by_kind"]) >= {"q_proj", "down_proj"}
        assert 0 < r["layer_seconds"] <= r["seconds"]


def test_select_threshold_smoke(tmp_path):
    data = run("select_threshold.py", "--sizes", "64x64", "--repeats", "1", out=tmp_path / "s.json")
    assert {r["strategy"] for r in data["rows"]} == {"kthvalue", "topk", "sort", "radix"}
    assert all(r["agrees"] for r in data["rows"])


def test_cg_stop_smoke(tmp_path):
    data = run("cg_stop.py", "--shapes", "64x128", "--tokens", "2048", "--settings", "0.6", out=tmp_path / "c.json")
    rows = {r["rule"]: r for r in data["rows"]}
    assert len(rows) == 4 and rows["residual 1e-4"]["stop"] == "residual"
    assert all(r["gap_vs_optimum"] < 1e-4 for r in rows.values())  # every rule ends near the optimum
    assert rows["+ ftol 1e-5"]["iterations"] <= rows["residual 1e-4"]["iterations"]


def test_report_renders_committed_results():
    """bench/report.py renders the README's tables from the committed JSON; a result file whose
    shape a section no longer reads breaks it here, not when someone regenerates the README."""
    proc = subprocess.run([sys.executable, str(BENCH / "report.py")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sections = {line[5:-4] for line in proc.stdout.splitlines() if line.startswith("<!-- ")}
    assert {"quality", "owl", "parity_by_seed", "parity_by_host", "dense_target"} <= sections
    host_rows = proc.stdout.split("<!-- parity_by_host -->")[1].split("<!--")[0]
    assert "Intel Xeon" in host_rows and "AMD EPYC" in host_rows  # each host's draws on their own rows
