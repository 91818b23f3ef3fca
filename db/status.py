"""The job status machine (ecosystem.md §2.2). Pure data: every status change goes through
`db.jobs.transition`, which consults it."""

from __future__ import annotations

# ecosystem.md's `validating` and `expired` are left out: nothing here validates after the door
# (the spec is checked at submission) and no job expires, so no job could ever show them
QUEUED, RUNNING, EVALUATING = "queued", "running", "evaluating"
CANCELLING, SUCCEEDED, FAILED, CANCELLED = "cancelling", "succeeded", "failed", "cancelled"
# the work finished and its checkpoint and report are kept, but the report broke a quality gate
# (pruning_core.spec.gates): a status of its own, so that a client waiting for "succeeded" does not
# ship it
GATE_FAILED = "gate_failed"

TERMINAL = frozenset({SUCCEEDED, GATE_FAILED, FAILED, CANCELLED})

TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({EVALUATING, SUCCEEDED, GATE_FAILED, FAILED, CANCELLING, QUEUED}),  # QUEUED: lease lapsed, retry
    EVALUATING: frozenset({SUCCEEDED, GATE_FAILED, FAILED, CANCELLING, QUEUED}),
    CANCELLING: frozenset({CANCELLED, SUCCEEDED, GATE_FAILED, FAILED}),  # it may finish before it notices
    SUCCEEDED: frozenset(),
    GATE_FAILED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


def allowed(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


STATUSES = tuple(TRANSITIONS)
