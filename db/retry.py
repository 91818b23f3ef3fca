"""Retry a database operation through transient failures (a restart, a dropped connection)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_retry(fn: Callable[[], T], attempts: int = 6, first_delay: float = 0.5) -> T:
    """Call `fn` (which opens its own session) again after transient errors, doubling the delay."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (OperationalError, DBAPIError) as exc:
            transient = isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False)
            if not transient or attempt == attempts:
                raise
            log.warning("database unavailable (%s); retry %d/%d in %.1fs", type(exc).__name__, attempt, attempts, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
