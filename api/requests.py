"""Request ids and the access log, as a plain ASGI middleware (outermost, so even a refused body
or a NUL in the URL gets an id and a log line).

A client's `X-Request-ID` is kept when it is a sane token (1-128 printable ASCII characters, no
spaces), else replaced by a fresh `req_...`; every response carries it, every log line written
while the request runs includes it (db.logs), and one access line records method, path, route
template, status, bytes and milliseconds; the same request is counted and timed for /metrics."""

from __future__ import annotations

import logging
import re
import secrets
import time

from db import logs, metrics

log = logging.getLogger(logs.ACCESS)
_SANE = re.compile(r"^[\x21-\x7e]{1,128}$")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    given = dict(headers).get(b"x-request-id", b"").decode("latin-1")
    return given if _SANE.match(given) else f"req_{secrets.token_hex(10)}"


class RequestContext:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = request_id(scope["headers"])
        started = time.perf_counter()
        status, size = 500, 0

        async def tagged(message):
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        with logs.bound(request_id=rid):
            try:
                await self.app(scope, receive, tagged)
            finally:
                route = getattr(scope.get("route"), "path", None)
                seconds = time.perf_counter() - started
                log.info("%s %s %s", scope["method"], scope["path"], status, extra={"fields": {
                    "route": route, "status": status, "bytes": size, "ms": round(seconds * 1000, 2)}})
                # by route template, never the raw path: ids and probes would make a series each
                m = metrics.get()
                m.http_requests.labels(scope["method"], route or "unmatched", str(status)).inc()
                m.http_seconds.labels(scope["method"], route or "unmatched").observe(seconds)
