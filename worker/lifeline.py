"""Children die with their parent. Every process the service starts (the API and the Celery
workers under a supervisor, the Celery pool child, the job processes under it) asks Linux for
SIGKILL when its parent dies (PR_SET_PDEATHSIG), so a SIGKILLed supervisor leaves no orphan
holding a port, a lease or a GPU."""

from __future__ import annotations

import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask for SIGKILL when `parent` dies; exit at once if it already has (it died before the
    request took effect, so no signal would ever come). Not Linux: nothing to ask for."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def child_dies_with_us():
    """A Popen `preexec_fn` (runs in the child between fork and exec; the setting survives exec)."""
    parent = os.getpid()
    return lambda: die_with_parent(parent)
