"""Render bench/results/*.json as the markdown tables in the README (no hand-copied numbers).

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _rows() -> list[dict]:
    """Rows of every quality run, first measurement of a (setting, impl, method) kept."""
    seen, rows = set(), []
    for name in ("quality.json", "quality_2.json", "quality_3.json"):
        for r in (load(name) or {"rows": []})["rows"]:
            key = (r["setting"], r["impl"], r["method"])
            if key not in seen:
                seen.add(key)
                rows.append({**r, "run": name})
    return rows


def quality() -> str:
    rows = _rows()
    anchors = {(r["setting"], r["method"]): r for r in rows if r["impl"] == "llm-compressor"}
    order = {"dense": 0, "0.5": 1, "0.7": 2, "2:4": 3}
    out = []
    for r in sorted(rows, key=lambda r: (order.get(r["setting"], 9), r["impl"] != "topiary", r["method"])):
        same = anchors.get((r["setting"], r["method"].split("+")[0])) if r["impl"] == "topiary" and "+" not in r["method"] else None
        sgpt = anchors.get((r["setting"], "sparsegpt")) if r["impl"] == "topiary" else None
        out.append([r["setting"], r["impl"], r["method"], f"{r['ppl']:.2f}", f"{r['seconds']:.0f}", f"{r['sparsity']:.4f}",
                    f"{r['ppl'] / same['ppl']:.3f}" if same else "", f"{r['ppl'] / sgpt['ppl']:.3f}" if sgpt else ""])
    return table(["setting", "implementation", "method", "WikiText-2 ppl", "prune s", "sparsity",
                  "ppl / llm-compressor, same method", "ppl / llm-compressor SparseGPT"], out)


def same_process_ratios() -> str:
    """ALPS and PGZ pruning time over our SparseGPT's at the same setting, both from quality_2.json."""
    rows = (load("quality_2.json") or {"rows": []})["rows"]
    ours = {(r["setting"], r["method"]): r for r in rows if r["impl"] == "topiary"}
    out = []
    for (setting, method), r in sorted(ours.items()):
        base = ours.get((setting, "sparsegpt"))
        if method.split("+")[0] in ("alps", "pgz") and base:
            out.append([setting, method, f"{r['seconds']:.0f}", f"{base['seconds']:.0f}", f"{r['seconds'] / base['seconds']:.2f}"])
    return table(["setting", "method", "prune s", "our SparseGPT s", "time ratio"], out) if out else ""


def service() -> str:
    parts = []
    api = load("api_load.json")
    if api:
        parts.append(f"API load ({api['setup']}):\n\n" + table(
            ["concurrency", "requests", "req/s", "p50 ms", "p99 ms", "errors"],
            [[r["concurrency"], r["requests"], f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", r["errors"]]
             for r in api["rows"]]))
    q = load("queue.json")
    if q:
        parts.append(f"Queue ({q['setup']}):\n\n" + table(
            ["submit→running p50", "p95", "max", "tiny jobs", "succeeded", "jobs/min"],
            [[f"{q['p50_s']:.3f} s", f"{q['p95_s']:.3f} s", f"{q['max_s']:.3f} s", q["throughput_jobs"], q["succeeded"],
              f"{q['jobs_per_minute']:.1f}"]]))
    return "\n\n".join(parts)


if __name__ == "__main__":
    print(quality())
    print()
    print(same_process_ratios())
    print()
    print(service())
