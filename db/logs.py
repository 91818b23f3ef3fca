"""One log setup for every service process: each line carries the context it was written in (the
request id in the API; the job id and attempt in a worker), as text or, with
TOPIARY_LOG_FORMAT=json, as one JSON object per line. TOPIARY_LOG_LEVEL sets the level (WARNING by
default); the API's access log ("topiary.access") is always on, one line per request."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

# read-only default: a writer that forgot to copy would otherwise leak fields into every thread
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("topiary_log_context",
                                                                           default=MappingProxyType({}))
ACCESS = "topiary.access"


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Every log line written inside (this thread or task) carries `fields`."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def context() -> dict[str, Any]:
    return dict(_CONTEXT.get())


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context = {**_CONTEXT.get(), **getattr(record, "fields", {})}
        return True


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in record.context.items())
        return f"{line} [{fields}]" if fields else line


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "process": self.process, "message": record.getMessage(),
               **record.context}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)

    def __init__(self, process: str):
        super().__init__()
        self.process = process


def configure(process: str) -> None:
    """Install the handler on the root logger once per process (calling again changes nothing)."""
    root = logging.getLogger()
    if any(getattr(h, "topiary", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.topiary = True  # type: ignore[attr-defined]
    handler.addFilter(_Context())
    if os.environ.get("TOPIARY_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(_Json(process))
    else:
        handler.setFormatter(_Text(f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(os.environ.get("TOPIARY_LOG_LEVEL", "WARNING").upper())
    logging.getLogger(ACCESS).setLevel(logging.INFO)
