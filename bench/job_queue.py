"""Queue benchmark: with an idle worker, submit -> running latency (p50/p95 over N jobs) and the
throughput of many tiny jobs, through the real API, Redis, PostgreSQL and a Celery worker.

    .venv/bin/python bench/job_queue.py            # 50 latency jobs, 20 throughput jobs
    .venv/bin/python bench/job_queue.py --latency-jobs 10 --throughput-jobs 5

Latency is measured server-side (started_at − created_at of the job resource). Each latency job
is cancelled once running so the next one meets an idle worker again. Writes bench/results/queue.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import print_table, write_json

from service_fixtures import Service, alembic, postgres_database

TINY = {"method": "magnitude", "sparsity": 0.5, "calibration": {"source": "c4", "nsamples": 2, "seqlen": 16, "seed": 0},
        "evaluation": {"datasets": []}, "device": "cpu"}


def tiny_model(root: Path, layers: int = 1, hidden: int = 32) -> Path:
    """A tiny random LLaMA (`layers` blocks) with the bundled model's tokenizer, as `root/tiny`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pruning_core import models

    tok = AutoTokenizer.from_pretrained(models.bundled_dir("smollm2-135m"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    return root


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency-jobs", type=int, default=50)
    ap.add_argument("--throughput-jobs", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="topiary-queue-bench-"))
    with postgres_database() as url:
        alembic(url, "upgrade", "head")
        svc = Service(tmp, url, "redis://127.0.0.1:6379/14", tiny_model(tmp / "models"))
        try:
            svc.register("tiny", path=str(tmp / "models" / "tiny"))
            svc.start_worker()
            svc.wait(svc.submit("tiny", TINY), timeout=120)  # warm-up: worker up, caches filled
            latencies = []
            for _ in range(args.latency_jobs):
                job_id = svc.submit("tiny", TINY)
                job = svc.wait(job_id, statuses=("running", "evaluating", "succeeded", "failed", "cancelled"))
                latencies.append(ts(job["started_at"]) - ts(job["created_at"]))
                svc.http.post(f"/v1/jobs/{job_id}/cancel")
                svc.wait(job_id)
            t0 = time.monotonic()
            ids = [svc.submit("tiny", TINY) for _ in range(args.throughput_jobs)]
            results = [svc.wait(i, timeout=1800)["status"] for i in ids]
            elapsed = time.monotonic() - t0
        finally:
            svc.close()
    row = {"latency_jobs": len(latencies), "p50_s": statistics.median(latencies), "p95_s": percentile(latencies, 0.95),
           "max_s": max(latencies), "throughput_jobs": len(ids), "succeeded": results.count("succeeded"),
           "seconds": elapsed, "jobs_per_minute": 60 * len(ids) / elapsed}
    print_table(["submit->running p50", "p95", "max", "tiny jobs", "succeeded", "jobs/min"],
                [[f"{row['p50_s']:.3f}s", f"{row['p95_s']:.3f}s", f"{row['max_s']:.3f}s", row["throughput_jobs"],
                  row["succeeded"], f"{row['jobs_per_minute']:.1f}"]])
    print(f"\nwrote {write_json('queue.json', {'setup': 'API + 1 CPU worker, Redis, PostgreSQL, one machine', **row})}")


if __name__ == "__main__":
    main()
