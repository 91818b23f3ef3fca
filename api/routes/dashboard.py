"""The internal dashboard: static files (api/dashboard/) served at /dashboard/, a client of the
same public REST API as everyone else. A strict Content-Security-Policy: scripts and styles only
from this origin, so nothing injected into a job's metadata could ever run as code."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[1] / "dashboard"
CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

router = APIRouter(include_in_schema=False)


@router.get("/")
def home():
    return RedirectResponse("/dashboard/")


class _Secured:
    """Adds the security headers to every static response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", CSP),
                                      (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/dashboard", _Secured(StaticFiles(directory=STATIC, html=True)), name="dashboard")
