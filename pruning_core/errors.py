"""Errors the library raises for bad input. Each carries a stable `code` slug that the CLI turns
into a one-line message and the service into a problem+json type / job error code."""

from __future__ import annotations


class TopiaryError(Exception):
    """Base class: a failure caused by the input, not a bug."""

    code = "topiary-error"

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class SpecError(TopiaryError, ValueError):
    code = "invalid-spec"


class ModelNotFound(TopiaryError):
    code = "model-not-found"


class PathNotAllowed(TopiaryError):
    """A local model path outside the directories this deployment lets jobs read."""

    code = "path-not-allowed"


class DiskFull(TopiaryError):
    """The disk filled up while the job wrote its blocks or its output."""

    code = "disk-full"


class UnsupportedArchitecture(TopiaryError):
    code = "unsupported-architecture"


class DataNotFound(TopiaryError):
    code = "data-not-found"


class Cancelled(Exception):
    """Raised by a progress callback to stop the driver cooperatively between layers."""

    code = "cancelled"
