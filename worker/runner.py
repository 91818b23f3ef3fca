"""One job attempt, start to finish: claim the row, hold a lease by heartbeat, run the pipeline
with per-layer progress events and cooperative cancellation, publish artifacts atomically, record
the outcome. The database is the source of truth; a duplicate delivery finds the job taken.

The claim and the lease live in the long-lived Celery child (no torch, so it answers a new job in
milliseconds); the pipeline runs in a single-use job process (`worker.job_process`), so all of a
job's GPU memory is returned when it exits."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from db import jobs, logs, metrics
from db import status as st
from db.artifacts import store_for
from db.engine import sessionmaker_for
from db.models import Artifact, Job, utcnow
from db.retry import with_retry
from db.settings import Settings

log = logging.getLogger(__name__)
EVAL_CHECK_SECONDS = 0.5  # evaluation batches: how often progress is written and a cancel looked for


class LeaseLost(Exception):
    """Another attempt owns the job now (our lease lapsed): stop without touching the row."""


class Heartbeat(threading.Thread):
    """Renews the lease every lease/3 seconds. When the row stops answering to our lease it tells
    why: `finished` (our attempt recorded its outcome: the terminal row keeps our name as owner),
    or `lost` (another attempt or the reaper has it)."""

    def __init__(self, settings: Settings, job_id: str, owner: str):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.settings, self.job_id, self.owner = settings, job_id, owner
        self.lost = threading.Event()
        self.finished = threading.Event()
        self.stop = threading.Event()

    def renew(self) -> bool:
        result = self._renew()
        metrics.get().lease_renewals.labels(metrics.worker_name(), result).inc()
        return result == "renewed"

    def _renew(self) -> str:
        with sessionmaker_for(self.settings.db_url)() as s:
            ok = s.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.lease_owner == self.owner,
                       Job.status.in_([st.RUNNING, st.EVALUATING, st.CANCELLING]))
                .values(lease_until=utcnow() + timedelta(seconds=self.settings.lease_seconds))
            ).rowcount
            s.commit()
            if ok:
                return "renewed"
            job = s.get(Job, self.job_id)
            if job is not None and job.status in st.TERMINAL and job.lease_owner == self.owner:
                self.finished.set()
                return "finished"
            self.lost.set()
            return "lost"

    def run(self) -> None:
        while not self.stop.wait(self.settings.lease_seconds / 3):
            try:
                if not self.renew():
                    return
            except Exception:  # a database blip: try again next beat
                metrics.get().lease_renewals.labels(metrics.worker_name(), "error").inc()
                log.warning("lease renewal failed for %s", self.job_id, exc_info=True)


class Runner:
    """The database side of one attempt. The Celery child claims the row and keeps the lease
    (`claim`, Heartbeat, `record_crash`); a fresh job process does the work (`execute`)."""

    def __init__(self, settings: Settings, job_id: str, owner: str):
        self.settings, self.job_id, self.owner = settings, job_id, owner
        self.maker = sessionmaker_for(settings.db_url)
        self.started = time.monotonic()
        self._last_stage, self._last_write = None, 0.0
        self._outcome_recorded = False
        self._report, self._error_code = None, None  # for the attempt's metrics

    # -- database steps, each in its own short transaction, retried through blips --------------
    def _claim(self) -> Job | None:
        def go():
            with self.maker() as s:
                if not jobs.claim(s, self.job_id, self.owner, self.settings.lease_seconds):
                    s.rollback()
                    return None
                s.commit()
                return s.get(Job, self.job_id)

        return with_retry(go)

    def _progress(self, p) -> None:
        """Called by the pipeline after every layer, at each stage, and between evaluation
        batches: record it and honour a cancel. Evaluation calls come often, so they touch the
        database at most every EVAL_CHECK_SECONDS."""
        now = time.monotonic()
        if p.layer is None and p.stage == self._last_stage and now - self._last_write < EVAL_CHECK_SECONDS:
            return
        self._last_stage, self._last_write = p.stage, now

        def go():
            with self.maker() as s:
                job = s.get(Job, self.job_id)
                if job.lease_owner != self.owner:
                    raise LeaseLost(self.job_id)
                if job.cancel_requested:
                    from pruning_core import Cancelled

                    raise Cancelled()
                progress = self._progress_dict(p, job.progress or {})
                if p.stage == "evaluating" and job.status == st.RUNNING:
                    jobs.transition(s, job, st.EVALUATING, where=[Job.lease_owner == self.owner], progress=progress)
                elif not s.execute(update(Job).where(Job.id == job.id, Job.lease_owner == self.owner,
                                                     Job.status == job.status, Job.cancel_requested.is_(False))
                                   .values(progress=progress).execution_options(synchronize_session=False)).rowcount:
                    raise jobs.Conflict(job, job.status)
                if p.stage == "pruning" and p.layer is not None:
                    jobs.add_event(s, job, "layer_done", progress)
                elif p.stage == "resuming":
                    done, blocks = p.blocks
                    jobs.add_event(s, job, "resumed", {"block": done, "blocks": blocks, "attempt": job.attempt,
                                                       "message": f"resumed at block {done} of {blocks}"})
                s.commit()

        self._until_settled(go)

    def _until_settled(self, go, tries: int = 10) -> None:
        """Run `go` (one transaction) again when another writer won a race on the row (a cancel,
        the reaper): the next read sees the winner, and `go` decides again from it."""
        for _ in range(tries):
            try:
                return with_retry(go)
            except jobs.Conflict:
                continue
        raise LeaseLost(self.job_id)

    def _progress_dict(self, p, previous: dict[str, Any]) -> dict[str, Any]:
        """Stages other than pruning keep the last layer counts (they have none of their own)."""
        elapsed = time.monotonic() - self.started
        out: dict[str, Any] = {**previous, "stage": p.stage, "elapsed_seconds": round(elapsed, 2)}
        if p.stage in ("calibrating", "measuring-outliers", "resuming", "pruning", "done"):
            out.update(layers_done=p.layers_done, layers_total=p.layers_total)
        if p.stage == "pruning" and p.layers_total:
            out["percent"] = round(100.0 * p.layers_done / p.layers_total, 2)
            out["eta_seconds"] = round(p.eta_seconds, 1) if p.eta_seconds is not None else None
        if p.point is not None:
            out["point"] = p.point
        out.pop("step", None)
        if p.step is not None:  # evaluation's windows and tasks: progress where no layer moves
            out["step"] = {"done": p.step[0], "total": p.step[1], "what": p.step[2]}
        if p.layer is not None:
            out.update(layer=p.layer.name, rel_error=p.layer.rel_error, sparsity=p.layer.sparsity,
                       target=p.layer.target, layer_seconds=round(p.layer.seconds, 4))
        return out

    def _finish(self, new: str, error=None, result=None, files=()) -> None:
        """Record the outcome, conditioned on our lease: a cancel that raced it is re-read and
        the job still ends once (running -> cancelling -> cancelled, or cancelling -> succeeded
        when the work was already done)."""

        def go():
            with self.maker() as s:
                job = s.get(Job, self.job_id)
                if job.lease_owner != self.owner or job.status in st.TERMINAL:
                    raise LeaseLost(self.job_id)
                ours = [Job.lease_owner == self.owner]
                if new == st.CANCELLED and job.status in (st.RUNNING, st.EVALUATING):
                    jobs.transition(s, job, st.CANCELLING, where=ours)
                jobs.transition(s, job, new, error=error, result=result, where=ours)
                for f in files:
                    s.add(Artifact(tenant_id=job.tenant_id, job_id=job.id, name=f.name, location=f.location,
                                   size=f.size, sha256=f.sha256))
                s.commit()

        self._until_settled(go)
        self._outcome_recorded = True

    # -- the attempt, split between two processes -------------------------------------------------
    def claim(self) -> Job | None:
        """Celery child: take the queued row (None when another delivery already has it)."""
        job = self._claim()
        if job is None:
            log.info("job %s is not queued (taken or finished): nothing to do", self.job_id)
        return job

    def execute(self) -> str:
        """Job process: run the claimed attempt to an outcome recorded in the database."""
        with self.maker() as s:
            job = s.get(Job, self.job_id)
        if job is None or job.lease_owner != self.owner:
            log.warning("job %s is not ours to run (owner %s)", self.job_id, job and job.lease_owner)
            return "lease-lost"
        out = None
        try:
            with logs.bound(job_id=self.job_id, attempt=job.attempt):
                out, outcome = self._execute(job)
            self._observe(job, outcome, time.monotonic() - self.started)
            return outcome
        except LeaseLost:
            log.warning("job %s: lease lost, another attempt owns it", self.job_id)
            return "lease-lost"
        finally:
            if out is not None:
                shutil.rmtree(out, ignore_errors=True)

    def _observe(self, job: Job, outcome: str, seconds: float) -> None:
        """The attempt's metrics (db.metrics), from its report when it has one."""
        m, worker = metrics.get(), metrics.worker_name()
        m.job_seconds.labels(worker, job.method, outcome).observe(seconds)
        if outcome == "failed" and self._error_code:
            m.job_failures.labels(worker, self._error_code).inc()
        report = self._report or {}
        for layer in report.get("layers", []):
            m.layer_seconds.labels(worker, job.method).observe(layer["seconds"])
        peak = report.get("peak_memory") or {}
        if peak.get("gpu_bytes") is not None:
            m.peak_gpu_bytes.labels(worker, job.method).observe(peak["gpu_bytes"])
        if peak.get("host_bytes") is not None:
            m.peak_host_bytes.labels(worker, job.method).observe(peak["host_bytes"])

    def record_crash(self, attempt: int, reason: str) -> bool:
        """Celery child: the job process died without recording an outcome (killed by the OOM
        killer, a segfault in a kernel...). Fail the attempt with that reason, or end a pending
        cancellation, unless the row moved on meanwhile. Returns True when something was recorded."""
        from .convert import work_dir

        shutil.rmtree(work_dir(self.settings, self.job_id, attempt), ignore_errors=True)
        shutil.rmtree(store_for(self.settings).work_area(self.job_id), ignore_errors=True)  # this attempt ends the job
        with self.maker() as s:
            job = s.get(Job, self.job_id)
            if job is None or job.lease_owner != self.owner or job.status in st.TERMINAL:
                return False
        store_for(self.settings).delete_prefix(f"jobs/{self.job_id}")  # nothing of it was committed
        if job.status == st.CANCELLING:
            self._finish(st.CANCELLED, error=("cancelled", "cancelled; the job process stopped"))
        else:
            self._finish(st.FAILED, error=("worker-crashed", reason))
            metrics.get().job_failures.labels(metrics.worker_name(), "worker-crashed").inc()
        return True

    def _execute(self, job: Job):
        from .convert import work_dir

        store = store_for(self.settings)
        out = work_dir(self.settings, job.id, job.attempt)
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        # the blocks pruned so far: kept across attempts (a retry after a lost worker or lease
        # resumes there); removed once the job has an outcome (a cancelled job's partial state too)
        resume = store.work_area(job.id)
        try:
            return self._attempt(job, out, resume)
        finally:
            if self._outcome_recorded:
                shutil.rmtree(resume, ignore_errors=True)

    def _attempt(self, job: Job, out, resume):
        from pruning_core import Cancelled, TopiaryError, pipeline, sweep

        from .convert import to_pipeline_job

        store = store_for(self.settings)
        try:
            spec = to_pipeline_job(job.spec, self.settings, self.settings.worker_device)
            run = sweep.run if spec.sweep else pipeline.run
            report = self._report = run(spec, out, progress=self._progress, resume_dir=resume)
            files = store.publish_dir(f"jobs/{job.id}", out)
            summary = _summary(report, len(files))
            outcome, error = self._judge(job, spec.gates, summary)
            self._finish(outcome, error=error, result=summary, files=files)
            return out, outcome
        except Cancelled:
            self._finish(st.CANCELLED, error=("cancelled", "cancelled by request"))
            return out, "cancelled"
        except LeaseLost:
            raise
        except TopiaryError as exc:
            self._error_code = exc.code
            self._finish(st.FAILED, error=(exc.code, str(exc)))
            return out, "failed"
        except Exception as exc:  # any other failure is recorded, never lost
            log.exception("job %s failed", job.id)
            store.delete_prefix(f"jobs/{job.id}")
            self._error_code = "internal-error"
            self._finish(st.FAILED, error=("internal-error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]))
            return out, "failed"


    def _judge(self, job: Job, gates, summary: dict[str, Any]):
        """The outcome the quality gates give the finished work (spec.gates): succeeded, or
        gate_failed with the broken gates as the error; the verdict goes into the summary."""
        from pruning_core.spec import gates as quality

        if gates is None:
            return st.SUCCEEDED, None
        previous = None
        if "max_regression" in gates.active and job.schedule_id:
            with self.maker() as s:
                previous = jobs.last_succeeded(s, job)
        summary["gates"] = quality.verdict(gates, summary, previous and previous.result,
                                           previous and previous.id)
        if summary["gates"]["passed"]:
            return st.SUCCEEDED, None
        return st.GATE_FAILED, ("gate-failed", quality.failures(summary["gates"])[:2000])


def _summary(report: dict[str, Any], files: int) -> dict[str, Any]:
    if "points" in report:  # a sweep: its curve
        return {"sweep": report["points"], "seconds_total": report["seconds_total"], "device": report["device"],
                "artifacts": files}
    return {"sparsity_achieved": report["sparsity_achieved"], "perplexity": report["perplexity"],
            "seconds_total": report["seconds_total"], "device": report["device"],
            "quantization": report.get("quantization"), "zero_shot": report.get("zero_shot") or None,
            "artifacts": files}
