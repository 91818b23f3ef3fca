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
    """A bad job spec. `param` is the dotted field (e.g. "options.rho0"); a spec checked whole
    raises one SpecError whose `errors` hold every bad field."""

    code = "invalid-spec"

    def __init__(self, message: str, param: str | None = None, errors: list[SpecError] | None = None):
        super().__init__(message, param)
        self.errors = errors or [self]

    def all(self) -> list[SpecError]:
        return list(self.errors)

    @classmethod
    def combine(cls, errors: list[SpecError]) -> SpecError:
        return errors[0] if len(errors) == 1 else cls("; ".join(str(e) for e in errors), errors[0].param, errors)

    def fields(self) -> list[dict[str, str]]:
        """[{field, message}] as problem+json `errors` show them."""
        return [{"field": e.param or "", "message": str(e).split(": ", 1)[-1] if e.param else str(e)}
                for e in self.errors]


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
