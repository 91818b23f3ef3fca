"""Registered models (a local directory under an allowed root, or a hub id) and uploaded
calibration datasets (plain text or JSON lines, size-limited)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from db.artifacts import store_for
from db.models import Artifact, Dataset, RegisteredModel, new_id
from db.paths import PathNotAllowed, allowed_model_dir
from pruning_core.spec import BUNDLED_MODELS

from .. import crud
from ..deps import Principal, require, session, settings
from ..problems import Problem
from ..schemas import DatasetOut, ModelCreate, ModelOut, Page

router = APIRouter(tags=["models"])


def _model_out(m: RegisteredModel) -> dict:
    return ModelOut(id=m.id, name=m.name, kind=m.kind, source=m.source, created_at=m.created_at).model_dump(mode="json")


def safe_model_dir(raw: str, roots: list[Path]) -> Path:
    """Resolve `raw` (following every symlink and '..') and accept it only inside an allowed root."""
    try:
        path = allowed_model_dir(raw, roots)
    except PathNotAllowed as exc:
        if exc.no_roots:
            raise Problem(403, "path-not-allowed", "Local models are disabled", str(exc))
        raise Problem(403, "path-not-allowed", "Path not allowed", str(exc),
                      errors=[{"field": "path", "message": "outside the allowed roots"}])
    if not (path / "config.json").is_file():
        raise Problem(422, "not-a-model", "Not a model directory", "the directory has no config.json",
                      errors=[{"field": "path", "message": "no config.json"}])
    return path


@router.get("/v1/models", response_model=Page)
def list_models(s=Depends(session), p: Principal = Depends(require("jobs:read"))):
    bundled = [ModelOut(id=name, name=name, kind="bundled", source=name, created_at=None).model_dump(mode="json")
               for name in BUNDLED_MODELS]
    rows = s.scalars(select(RegisteredModel).where(RegisteredModel.tenant_id == p.tenant_id).order_by(RegisteredModel.name))
    data = bundled + [_model_out(m) for m in rows]
    return Page(data=data, has_more=False, first_id=data[0]["id"], last_id=data[-1]["id"])


@router.post("/v1/models", status_code=201, response_model=ModelOut)
def register_model(body: ModelCreate, s=Depends(session), cfg=Depends(settings),
                   p: Principal = Depends(require("jobs:write"))):
    if body.name in BUNDLED_MODELS:
        raise Problem(409, "name-taken", "Name taken", f"{body.name} is a bundled model")
    if body.path is not None:
        kind, source = "local", str(safe_model_dir(body.path, cfg.allowed_model_roots))
    else:
        kind, source = "hub", body.hub_id
    model = RegisteredModel(tenant_id=p.tenant_id, name=body.name, kind=kind, source=source)
    crud.add_named(s, model, "model")
    return _model_out(model)


@router.post("/v1/datasets", status_code=201, response_model=DatasetOut,
             openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}, "required": True}})
async def upload_dataset(request: Request, name: str = Query(..., min_length=1, max_length=100, pattern=r"^[\w.-]+$"),
                         format: Literal["txt", "jsonl"] = "txt", s=Depends(session), cfg=Depends(settings),
                         p: Principal = Depends(require("jobs:write"))):
    """Upload calibration text as the raw request body (.txt: one stream; .jsonl: {"text": ...} per line)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cfg.max_dataset_bytes:
        raise Problem(413, "payload-too-large", "Dataset too large", f"the limit is {cfg.max_dataset_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > cfg.max_dataset_bytes:
            raise Problem(413, "payload-too-large", "Dataset too large", f"the limit is {cfg.max_dataset_bytes} bytes")
    if not body.strip():
        raise Problem(422, "empty-dataset", "Empty dataset", "the request body holds no text")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(422, "not-utf8", "Dataset is not UTF-8 text", "upload UTF-8 encoded text")
    import io

    dataset_id = new_id("ds")
    stored = store_for(cfg).put_stream(f"datasets/{dataset_id}.{format}", io.BytesIO(bytes(body)),
                                                  cfg.max_dataset_bytes)
    art = Artifact(tenant_id=p.tenant_id, job_id=None, name=f"{name}.{format}", location=stored.location,
                   size=stored.size, sha256=stored.sha256)
    s.add(art)
    s.flush()
    ds = Dataset(id=dataset_id, tenant_id=p.tenant_id, name=name, artifact_id=art.id)
    s.add(ds)
    s.commit()
    return DatasetOut(id=ds.id, name=name, size=art.size, sha256=art.sha256, created_at=ds.created_at).model_dump(mode="json")
