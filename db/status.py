"""The job status machine (ecosystem.md §2.2). Pure data: every status change goes through
`db.jobs.transition`, which consults it."""

from __future__ import annotations

QUEUED, VALIDATING, RUNNING, EVALUATING = "queued", "validating", "running", "evaluating"
CANCELLING, SUCCEEDED, FAILED, CANCELLED, EXPIRED = "cancelling", "succeeded", "failed", "cancelled", "expired"

TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})

TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({VALIDATING, RUNNING, FAILED, CANCELLED, EXPIRED}),
    VALIDATING: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({EVALUATING, SUCCEEDED, FAILED, CANCELLING, QUEUED}),  # QUEUED: lease lapsed, retry
    EVALUATING: frozenset({SUCCEEDED, FAILED, CANCELLING, QUEUED}),
    CANCELLING: frozenset({CANCELLED, SUCCEEDED, FAILED}),  # it may finish before it notices
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}


def allowed(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())
