"""Job submission: resolve the model, normalize the spec, apply Idempotency-Key, commit, then
enqueue the id (never before the row is durable)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import broker, jobs
from db.models import Artifact, Dataset, IdempotencyRecord, Job, RegisteredModel
from db.settings import Settings
from pruning_core.errors import SpecError
from pruning_core.spec import BUNDLED_MODELS, HUB_ID, JobSpec, layout

from . import wire
from .problems import Problem
from .schemas import JobCreate


def job_out(job: Job) -> dict[str, Any]:
    return wire.job(job)


def resolve_model(s: Session, tenant_id: str, ref: str) -> dict[str, str]:
    """bundled name | registered model (id or name) | hub id -> {kind, source}."""
    if ref in BUNDLED_MODELS:
        return {"kind": "bundled", "source": ref}
    found = s.scalar(select(RegisteredModel).where(
        RegisteredModel.tenant_id == tenant_id, or_(RegisteredModel.id == ref, RegisteredModel.name == ref)))
    if found is not None:
        return {"kind": found.kind, "source": found.source}
    if HUB_ID.match(ref):
        return {"kind": "hub", "source": ref}
    raise Problem(422, "unknown-model", "Unknown model",
                  f"{ref!r} is not a bundled model ({', '.join(BUNDLED_MODELS)}), a registered model or a hub id",
                  errors=[{"field": "model", "message": "unknown model"}])


def check_limits(body: JobCreate, settings: Settings, prefix: str = "") -> None:
    """What this deployment lets one job ask for (Settings.max_calibration_tokens)."""
    cal = body.calibration
    tokens = cal.nsamples * cal.seqlen
    if tokens > settings.max_calibration_tokens:
        message = (f"nsamples x seqlen = {tokens} calibration tokens; this deployment allows at most "
                   f"{settings.max_calibration_tokens} (TOPIARY_MAX_CALIBRATION_TOKENS)")
        raise Problem(422, "validation-error", "Request is not valid", f"{prefix}calibration: {message}",
                      errors=[{"field": f"{prefix}calibration.nsamples", "message": message}])


def _invalid(exc: SpecError, prefix: str) -> Problem:
    fields = [{**e, "field": prefix + e["field"]} for e in exc.fields()]
    return Problem(422, "validation-error", "Request is not valid",
                   "; ".join(prefix + str(e) for e in exc.errors), errors=fields)


def checked_spec(body: JobCreate, prefix: str = "") -> dict[str, Any]:
    """The body run through the job spec (pruning_core.spec): every rule and default applied, or
    a 422 naming each bad field (e.g. options.rho0)."""
    try:
        return JobSpec.from_dict(body.model_dump(mode="json", exclude={"metadata"})).to_dict()
    except SpecError as exc:
        raise _invalid(exc, prefix) from None


def model_config(model_source: dict[str, str]) -> dict | None:
    """The model's config.json where this process can read it: the bundled model's is in the
    spec; a registered directory's is on disk (when the API shares the workers' filesystem)."""
    return layout.read_config(model_source["source"]) if model_source["kind"] in ("bundled", "local") else None


def check_layers(spec: dict[str, Any], model_source: dict[str, str], prefix: str = "") -> None:
    """The spec checked against the model's layers before queueing (spec.layout.check: profile
    rules, packed quantization groups): a 422. Models whose layout is not at hand here are
    checked by the worker, by the same code, when it opens the model."""
    job = JobSpec.from_dict({k: v for k, v in spec.items() if k != "model_source"})
    try:
        layout.check(model_config(model_source), job.spec)
    except SpecError as exc:
        raise _invalid(exc, prefix) from None


def normalized_spec(s: Session, settings: Settings, tenant_id: str, body: JobCreate,
                    prefix: str = "") -> dict[str, Any]:
    """`prefix`: where the job body sits in the request ("job." in a schedule), for error fields."""
    spec = checked_spec(body, prefix)
    check_limits(body, settings, prefix)
    spec["model_source"] = resolve_model(s, tenant_id, body.model)
    check_layers(spec, spec["model_source"], prefix)
    source = body.calibration.source
    if source.startswith("ds_"):
        dataset = s.scalar(select(Dataset).where(Dataset.id == source, Dataset.tenant_id == tenant_id))
        if dataset is None:
            raise Problem(422, "unknown-dataset", "Unknown dataset", f"no uploaded dataset {source}",
                          errors=[{"field": "calibration.source", "message": "unknown dataset"}])
        spec["calibration"]["location"] = s.get(Artifact, dataset.artifact_id).location
    return spec


def _fingerprint(spec: dict[str, Any], metadata: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps([spec, metadata], sort_keys=True).encode()).hexdigest()


def _replay(s: Session, tenant_id: str, key: str, fingerprint: str) -> tuple[int, dict]:
    """The first response for `key`, or 422 when the key came with another body. The key's row is
    written in the transaction that creates its job, so a stored key always has its response."""
    record = s.get(IdempotencyRecord, (tenant_id, key))
    if record is None or record.status_code is None:  # vanished since the conflict: let the client retry
        raise Problem(409, "idempotency-conflict", "Request in flight", "retry this request")
    if record.fingerprint != fingerprint:
        raise Problem(422, "idempotency-key-reuse", "Idempotency-Key reused",
                      "this key was used with a different request body")
    return record.status_code, record.response or {}


def create_job(s: Session, settings: Settings, tenant_id: str, body: JobCreate,
               idempotency_key: str | None) -> tuple[int, dict[str, Any], bool]:
    """Returns (status code, body, replayed). The job row and its Idempotency-Key row commit in
    one transaction: a request that dies midway (the database restarting) leaves neither, and a
    concurrent twin waits on the key's row, then replays the winner's response."""
    from .admission import admit

    spec = normalized_spec(s, settings, tenant_id, body)
    admit(s, settings, spec)
    fingerprint = _fingerprint(spec, body.metadata)
    try:
        job = jobs.create_job(s, tenant_id, spec, body.metadata)
        payload = job_out(job)
        if idempotency_key is not None:
            s.add(IdempotencyRecord(tenant_id=tenant_id, key=idempotency_key, fingerprint=fingerprint,
                                    status_code=201, response=payload))
        s.commit()
    except IntegrityError:
        s.rollback()
        if idempotency_key is None:
            raise
        code, first = _replay(s, tenant_id, idempotency_key, fingerprint)
        return code, first, True
    if settings.enqueue:
        broker.enqueue(settings, job.id)
    return 201, payload, False
