"""Prometheus metrics: one owner for every metric the API and the workers expose.

The API serves its own at GET /metrics. A `topiary worker` supervisor serves those of all its
processes (itself: webhook deliveries; each Celery child: lease renewals; each single-use job
process: job durations, layer seconds, peak memory, failures) on TOPIARY_WORKER_METRICS_PORT,
through prometheus_client's multiprocess mode: every process writes its samples under
PROMETHEUS_MULTIPROC_DIR, which the supervisor creates and its children inherit.

prometheus_client picks its storage when it is first imported (by the environment variable), so
the metrics are created on first use, after the supervisor has set the variable, never at import.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from types import SimpleNamespace

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)  # API latency
LAYER_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
JOB_SECONDS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
GIB = 1 << 30
BYTES = tuple(GIB * g for g in (0.5, 1, 2, 4, 8, 16, 24, 40, 48, 80, 96, 141, 192, 256, 512))


@functools.cache
def get() -> SimpleNamespace:
    """The metric objects of this process (created once, on first use)."""
    from prometheus_client import Counter, Histogram

    return SimpleNamespace(
        http_requests=Counter("topiary_http_requests", "API requests answered", ["method", "route", "status"]),
        http_seconds=Histogram("topiary_http_request_duration_seconds", "API request latency",
                               ["method", "route"], buckets=SECONDS),
        job_seconds=Histogram("topiary_job_duration_seconds", "Job attempts, from start to recorded outcome",
                              ["worker", "method", "outcome"], buckets=JOB_SECONDS),
        layer_seconds=Histogram("topiary_layer_seconds", "Seconds spent pruning one layer", ["worker", "method"],
                                buckets=LAYER_SECONDS),
        peak_gpu_bytes=Histogram("topiary_job_peak_gpu_memory_bytes", "Peak GPU memory allocated by one job",
                                 ["worker", "method"], buckets=BYTES),
        peak_host_bytes=Histogram("topiary_job_peak_host_memory_bytes", "Peak resident memory of one job's process",
                                  ["worker", "method"], buckets=BYTES),
        job_failures=Counter("topiary_job_failures", "Failed job attempts by error code", ["worker", "code"]),
        lease_renewals=Counter("topiary_lease_renewals", "Lease renewals by result (renewed, finished, lost, error)",
                               ["worker", "result"]),
        webhook_deliveries=Counter("topiary_webhook_deliveries", "Webhook delivery attempts by outcome",
                                   ["outcome"]),
    )


def worker_name() -> str:
    """This worker's label (gpu0, cpu...): set by `topiary worker` for its children."""
    return os.environ.get("TOPIARY_WORKER_NAME", "worker")


def exposition(extra=()) -> tuple[bytes, str]:
    """(body, content type) of a scrape: this process's metrics, or every process's under
    PROMETHEUS_MULTIPROC_DIR, plus the `extra` collectors (read at scrape time)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    get()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if extra:
        more = CollectorRegistry()
        for collector in extra:
            more.register(collector)
        body += generate_latest(more)
    return body, CONTENT_TYPE_LATEST


class MultiprocessArea:
    """A fresh PROMETHEUS_MULTIPROC_DIR for one supervisor and its children (stale files from an
    earlier run would add old counts), removed when it stops."""

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix="topiary-metrics-")
        os.environ[MULTIPROC_ENV] = self.path
        return self.path

    def __exit__(self, *exc) -> None:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(self.path, ignore_errors=True)


def serve(port: int, host: str = "0.0.0.0"):
    """The worker's scrape endpoint (a daemon thread), or None when the port is 0 or taken."""
    import logging

    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    if not port:
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    try:
        server, _thread = start_http_server(port, host, registry=registry)
    except OSError as exc:
        logging.getLogger(__name__).warning("worker metrics not served on port %s: %s", port, exc)
        return None
    return server
