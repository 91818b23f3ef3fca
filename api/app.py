"""FastAPI application factory: `uvicorn --factory api.app:create_app` or `topiary api`."""

from __future__ import annotations

from fastapi import FastAPI

from db import logs
from db.settings import Settings, get_settings

from . import problems
from .requests import RequestContext
from .routes import (
    artifacts,
    dashboard,
    events,
    health,
    jobs,
    keys,
    methods,
    metrics,
    models,
    schedules,
    webhooks,
    workers,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="Topiary", version="0.1.0",
                  description="One-shot LLM pruning jobs (ALPS, PGZ, SparseGPT, Wanda, magnitude).")
    app.state.settings = settings or get_settings()
    problems.install(app)
    problems.document(app)

    logs.configure("api")
    app.add_middleware(BodyLimit, limit=app.state.settings.max_body_bytes)
    app.add_middleware(NoNulInUrl)
    app.add_middleware(RequestContext)  # added last: the outermost, so every answer has an id and a log line
    for module in (health, metrics, jobs, methods, events, artifacts, models, schedules, webhooks, keys, workers):
        app.include_router(module.router)
    dashboard.install(app)
    return app


class BodyLimit:
    """Refuse request bodies over `limit` bytes: at once from a Content-Length that says so, else
    by counting the bytes actually received (a chunked body declares no length). The body is read
    here, at most `limit` bytes of it, and handed on to the app. Dataset uploads (/v1/datasets)
    enforce their own, larger limit while streaming. A plain ASGI middleware."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/v1/datasets"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._refuse(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        return await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send):
        response = problems.problem_response(413, "payload-too-large", "Request body too large",
                                             f"the limit is {self.limit} bytes", scope["path"])
        return await response(scope, receive, send)


class NoNulInUrl:
    """Refuse a NUL character in the path or query string with a 422 problem: it can name no
    resource, and PostgreSQL rejects it in any text it is compared with (a 500 otherwise).
    Bodies get the same rule from api.schemas.Body. Plain ASGI, like BodyLimit."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            query = scope.get("query_string", b"").lower()
            if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
                response = problems.problem_response(422, "validation-error", "Request is not valid",
                                                     "the URL contains a NUL character", scope["path"].replace("\x00", ""),
                                                     errors=[{"field": "url", "message": "contains a NUL character"}])
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)
