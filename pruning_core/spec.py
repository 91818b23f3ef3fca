"""Typed, validated description of one pruning run.

`PruneSpec` is what the CLI, the API schema and the worker all map onto. It is frozen so that a
spec handed to the driver cannot change under it; method options are checked against the
method's own options dataclass when the spec is built.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .errors import SpecError
from .quant import QuantSpec

_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Pattern:
    """Sparsity pattern. `n_keep:m` means at most n_keep nonzeros per group of m inputs."""

    kind: str = "unstructured"  # "unstructured" | "nm"
    n_keep: int = 0
    m: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "Pattern":
        """Parse "unstructured" or "N:M" (N kept out of every M consecutive inputs)."""
        if text is None or text.strip().lower() in ("", "unstructured"):
            return cls()
        match = _NM_RE.match(text)
        if not match:
            raise SpecError(f"pattern must be 'unstructured' or 'N:M' (e.g. 2:4), got {text!r}", "pattern")
        n, m = int(match.group(1)), int(match.group(2))
        if not 0 < n < m:
            raise SpecError(f"pattern {n}:{m} needs 0 < N < M (N weights kept out of every M)", "pattern")
        return cls("nm", n, m)

    @property
    def is_nm(self) -> bool:
        return self.kind == "nm"

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n_keep / self.m if self.is_nm else 0.0

    def __str__(self) -> str:
        return f"{self.n_keep}:{self.m}" if self.is_nm else "unstructured"


@dataclass(frozen=True)
class CalibrationSpec:
    """Where calibration sequences come from and how many: `source` is c4, wikitext2, ptb or a
    .txt/.jsonl path."""

    source: str = "c4"
    nsamples: int = 128
    seqlen: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if self.nsamples < 1:
            raise SpecError("calibration nsamples must be >= 1", "nsamples")
        if self.seqlen < 2:
            raise SpecError("calibration seqlen must be >= 2", "seqlen")


DEFAULT_IGNORE = ("lm_head",)


@dataclass(frozen=True)
class PruneSpec:
    """One pruning run: method, target sparsity or N:M pattern, method options, calibration.

    `sparsity` is the fraction of zeros in every pruned layer; for N:M it is implied by the pattern.
    `ignore` holds substrings of linear-layer names (relative to a decoder block or absolute) that
    are left dense. Embeddings and lm_head live outside the decoder blocks and are never pruned.
    """

    method: str
    sparsity: float = 0.5
    pattern: Pattern = field(default_factory=Pattern)
    options: Mapping[str, Any] = field(default_factory=dict)
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    quant: Optional[QuantSpec] = None  # joint quantization of the kept weights (sparsegpt, pgz)

    def __post_init__(self) -> None:
        from .methods import METHODS  # late: methods import this module

        if self.method not in METHODS:
            raise SpecError(f"unknown method {self.method!r}; choose from {', '.join(sorted(METHODS))}", "method")
        if self.pattern.is_nm:
            object.__setattr__(self, "sparsity", self.pattern.sparsity)
        elif not 0.0 <= float(self.sparsity) < 1.0:
            raise SpecError(f"sparsity must be in [0, 1), got {self.sparsity}", "sparsity")
        object.__setattr__(self, "sparsity", float(self.sparsity))
        object.__setattr__(self, "options", dict(self.options))
        if self.quant is not None and not METHODS[self.method].supports_quant:
            joint = ", ".join(sorted(n for n, m in METHODS.items() if m.supports_quant))
            raise SpecError(f"method {self.method} has no joint quantization; use one of: {joint}", "quantize")
        self.method_options()  # validate option names and values now, not mid-run

    def method_options(self) -> Any:
        """The method's options dataclass built from `options` (unknown keys are an error)."""
        from .methods import METHODS

        cls = METHODS[self.method].options
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise SpecError(
                f"unknown option(s) {', '.join(unknown)} for method {self.method}; known: {', '.join(sorted(known)) or 'none'}",
                "options",
            )
        try:
            return cls(**self.options)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"bad option for method {self.method}: {exc}", "options") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "sparsity": self.sparsity,
            "pattern": str(self.pattern),
            "options": dataclasses.asdict(self.method_options()),
            "calibration": dataclasses.asdict(self.calibration),
            "ignore": list(self.ignore),
            "quantize": dataclasses.asdict(self.quant) if self.quant else None,
        }
