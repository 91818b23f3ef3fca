"""RFC 9457 problem+json for every error. `type` is a stable slug URI; no stack trace, SQL or
internal message ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a request: becomes a problem+json response."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", headers: dict | None = None, **extra: Any):
        super().__init__(detail or title)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.headers, self.extra = headers or {}, extra


def problem_response(status: int, slug: str, title: str, detail: str = "", instance: str | None = None,
                     headers: dict | None = None, **extra: Any) -> JSONResponse:
    body = {"type": f"/problems/{slug}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


_HTTP_SLUGS = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
               406: "not-acceptable", 413: "payload-too-large", 415: "unsupported-media-type"}


def _field(loc: tuple) -> str:
    """'body.calibration.nsamples' -> 'calibration.nsamples' (the field a client sent)."""
    parts = [str(p) for p in loc]
    return ".".join(parts[1:] if parts and parts[0] == "body" else parts)


def _error(e: dict, body: bytes) -> dict[str, str]:
    """One validation error as {field, message}; a JSON syntax error names its line and column
    (FastAPI puts the character offset where the field would be)."""
    if e.get("type") == "json_invalid":
        loc = e.get("loc", ())
        reason = (e.get("ctx") or {}).get("error", "invalid JSON")
        if loc and isinstance(loc[-1], int):
            before = body[: loc[-1]].decode("utf-8", "replace")
            line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
            reason = f"malformed JSON at line {line}, column {column}: {reason}"
        return {"field": "", "message": reason}
    return {"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")}


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.slug, exc.title, exc.detail, request.url.path, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        body = await request.body()
        errors = [_error(e, body) for e in exc.errors()]
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors[:5])
        return problem_response(422, "validation-error", "Request is not valid", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else ""
        return problem_response(exc.status_code, slug, slug.replace("-", " ").capitalize(), detail, request.url.path,
                                getattr(exc, "headers", None))

    app.add_middleware(Unexpected)


RETRY_AFTER_SECONDS = 5


def database_unavailable(exc: BaseException) -> bool:
    """The database is down or restarting (not: a bad statement). Then clients should retry."""
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return isinstance(exc, (OperationalError, PoolTimeout)) or (
        isinstance(exc, DBAPIError) and bool(exc.connection_invalidated))


class Unexpected:
    """Any exception a route did not turn into a problem becomes one here: 503 with Retry-After
    while the database is unavailable, else 500; logged, never shown. It is answered like any
    other response, so the connection stays usable (Starlette's outermost handler re-raises
    after answering, and the server then drops the keep-alive connection without saying so).
    A plain ASGI middleware."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watch(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # a stream failed midway: nothing left to answer with
                raise
            if database_unavailable(exc):
                log.warning("database unavailable on %s %s: %s", scope["method"], scope["path"], type(exc).__name__)
                response = problem_response(503, "service-unavailable", "Service unavailable",
                                            "the database is unavailable; retry shortly", scope["path"],
                                            {"Retry-After": str(RETRY_AFTER_SECONDS)})
            else:
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                response = problem_response(500, "internal-error", "Internal error", "the error was logged",
                                            scope["path"])
            await response(scope, receive, send)


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}}}},
    },
    "additionalProperties": True,
}


_ERROR_TEXT = {"401": "Missing or invalid API key", "403": "The key lacks the scope this call needs",
               "404": "No such resource (another tenant's is not found either)",
               "409": "Conflict with the resource's state", "422": "Validation error: errors[].field names each bad field"}


def _errors_of(path: str, verb: str) -> list[str]:
    """The problem responses an operation can give: every /v1 call can be refused its key (401)
    or scope (403) and its input (422); one naming a resource, 404; one changing state, 409."""
    codes = ["422"]
    if path.startswith("/v1/"):
        codes += ["401", "403"]
        if "{" in path:
            codes.append("404")
        if verb in ("post", "delete", "patch", "put"):
            codes.append("409")
    return sorted(codes)


def document(app: FastAPI) -> None:
    """Declare problem+json for errors in the OpenAPI document (every operation: 422 and default)
    instead of FastAPI's own validation-error shape, which this API never sends."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["Problem"] = PROBLEM_SCHEMA
        ref = {"content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                              "description": "an API key: topiary keys create"}}
        for path, item in schema.get("paths", {}).items():
            for verb, op in item.items():
                responses = op.setdefault("responses", {})
                for code in _errors_of(path, verb):
                    responses[code] = {"description": _ERROR_TEXT[code], **ref}
                responses["default"] = {"description": "Error (RFC 9457 problem details)", **ref}
                if path.startswith("/v1/"):
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
