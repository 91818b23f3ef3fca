"""FastAPI application factory: `uvicorn --factory api.app:create_app` or `topiary api`."""

from __future__ import annotations

from typing import Optional

from fastapi import FastAPI, Request

from db.settings import Settings, get_settings

from . import problems
from .routes import artifacts, events, health, jobs, models


def create_app(settings: Optional[Settings] = None) -> FastAPI:
    app = FastAPI(title="Topiary", version="0.1.0",
                  description="One-shot LLM pruning jobs (ALPS, PGZ, SparseGPT, Wanda, magnitude).")
    app.state.settings = settings or get_settings()
    problems.install(app)
    problems.document(app)

    @app.middleware("http")
    async def limit_json_bodies(request: Request, call_next):
        """Refuse oversized JSON bodies before parsing them (dataset uploads have their own limit)."""
        limit = app.state.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if not request.url.path.startswith("/v1/datasets") and declared.isdigit() and int(declared) > limit:
            return problems.problem_response(413, "payload-too-large", "Request body too large",
                                             f"the limit is {limit} bytes", request.url.path)
        return await call_next(request)

    for module in (health, jobs, events, artifacts, models):
        app.include_router(module.router)
    return app
