"""The job spec: one typed, torch-free description of a pruning job that the API, the CLI, the
worker and the library all build from the same dict, with the same defaults and the same errors.

`JobSpec.from_dict` checks every field and raises one `SpecError` listing each bad field by its
dotted path (e.g. `options.rho0`); `to_dict` is the normalized form that is stored and sent to the
worker, and `from_dict(to_dict(x)) == x`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from .gates import Gates
from .methods import DECLARED, QUANT_METHODS
from .profile import SparsityProfile

# names the service and the CLI accept; the implementations (models.BUNDLED, data.EVAL_FILES,
# data.CALIB_FILES, zeroshot.TASKS) are keyed by exactly these (tests/unit/test_spec_registry.py)
BUNDLED_MODELS = ("smollm2-135m",)
EVAL_DATASETS = ("wikitext2", "ptb", "c4")
CALIB_DATASETS = ("c4", "wikitext2", "ptb")
ZERO_SHOT_TASKS = ("arc_easy", "arc_challenge", "openbookqa", "piqa", "boolq", "rte", "hellaswag", "winogrande",
                   "lambada_openai")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANT_FORMATS = ("packed", "dense")  # "auto": the checkpoint's own dtype
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d{1,2})?)$")

DEFAULT_SPARSITY = 0.5
MAX_SWEEP_POINTS = 16
DEFAULT_EVAL_DATASETS = ("wikitext2",)
DEFAULT_IGNORE = ("lm_head",)
# (low, high) inclusive: one owner for every numeric range of the spec
LIMITS = {
    "calibration.nsamples": (1, 4096),
    "calibration.seqlen": (8, 32768),
    "calibration.seed": (0, 2**31 - 1),
    "evaluation.seqlen": (8, 32768),
    "evaluation.limit": (1, 100_000),
    "evaluation.task_limit": (1, 100_000),
    "quantize.bits": (2, 8),
    "quantize.group_size": (1, 65536),
    "pattern.m": (2, 64),
}
_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def check_int(value: Any, where: str, optional: bool = False) -> int | None:
    """An integer inside LIMITS[where] (None allowed when `optional`)."""
    if value is None and optional:
        return None
    low, high = LIMITS[where]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"{where}: must be an integer, got {value!r}", where)
    if not low <= value <= high:
        raise SpecError(f"{where}: must be in {low}..{high}, got {value}", where)
    return value


def _choice(value: Any, choices: tuple[str, ...], where: str, what: str) -> str:
    if value not in choices:
        raise SpecError(f"{where}: unknown {what} {value!r}; choose from {', '.join(choices)}", where)
    return value


@dataclass(frozen=True)
class Pattern:
    """Sparsity pattern. `n_keep:m` means at most n_keep nonzeros per group of m inputs."""

    kind: str = "unstructured"  # "unstructured" | "nm"
    n_keep: int = 0
    m: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Pattern:
        """Parse "unstructured" or "N:M" (N kept out of every M consecutive inputs)."""
        if text is None or (isinstance(text, str) and text.strip().lower() in ("", "unstructured")):
            return cls()
        match = _NM_RE.match(text) if isinstance(text, str) else None
        if not match:
            raise SpecError(f"pattern: must be 'unstructured' or 'N:M' (e.g. 2:4), got {text!r}", "pattern")
        n, m = int(match.group(1)), int(match.group(2))
        _, high = LIMITS["pattern.m"]
        if not 0 < n < m <= high:
            raise SpecError(f"pattern: {n}:{m} needs 0 < N < M <= {high} (N weights kept out of every M)", "pattern")
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
    """Where calibration sequences come from and how many: `source` is c4, wikitext2, ptb, a
    .txt/.jsonl path (library and CLI) or an uploaded dataset id (service)."""

    source: str = "c4"
    nsamples: int = 128
    seqlen: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise SpecError("calibration.source: must be a dataset name or a file", "calibration.source")
        check_int(self.nsamples, "calibration.nsamples")
        check_int(self.seqlen, "calibration.seqlen")
        check_int(self.seed, "calibration.seed")


@dataclass(frozen=True)
class QuantSpec:
    """Joint quantization of the kept weights: `bits`-bit integer grids, one per output row or
    per `group_size` columns."""

    bits: int = 4
    group_size: int | None = None
    # "packed": compressed-tensors pack-quantized (integer codes, scales, zero points; what vLLM
    # serves); "dense": float weights that sit on the grid
    format: str = "packed"

    def __post_init__(self) -> None:
        check_int(self.bits, "quantize.bits")
        check_int(self.group_size, "quantize.group_size", optional=True)
        _choice(self.format, QUANT_FORMATS, "quantize.format", "checkpoint format")

    @classmethod
    def parse(cls, text: str | None, group_size: int | None = None,
              format: str | None = None) -> QuantSpec | None:
        """'int4' (or 'int3', 'int8', ...) -> QuantSpec; None/'none' -> None."""
        if text is None or text.lower() in ("", "none"):
            for value, where in ((group_size, "quantize.group_size"), (format, "quantize.format")):
                if value is not None:
                    raise SpecError(f"{where}: needs quantization (e.g. int4)", where)
            return None
        if not text.lower().startswith("int") or not text[3:].isdigit():
            raise SpecError(f"quantize: must look like int4, got {text!r}", "quantize")
        return cls(int(text[3:]), group_size, format or "packed")


@dataclass(frozen=True)
class EvalSpec:
    """Perplexity datasets, window length (None = calibration seqlen), optional cap on windows,
    whether to measure the dense model too, and zero-shot tasks with an optional cap on items."""

    datasets: tuple[str, ...] = DEFAULT_EVAL_DATASETS
    seqlen: int | None = None
    limit: int | None = None
    dense: bool = True
    tasks: tuple[str, ...] = ()
    task_limit: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        for i, name in enumerate(self.datasets):
            _choice(name, EVAL_DATASETS, f"evaluation.datasets[{i}]", "dataset")
        for i, name in enumerate(self.tasks):
            _choice(name, ZERO_SHOT_TASKS, f"evaluation.tasks[{i}]", "zero-shot task")
        for where, dup in (("datasets", self.datasets), ("tasks", self.tasks)):
            if len(set(dup)) != len(dup):
                raise SpecError(f"evaluation.{where}: names a {where[:-1]} twice", f"evaluation.{where}")
        check_int(self.seqlen, "evaluation.seqlen", optional=True)
        check_int(self.limit, "evaluation.limit", optional=True)
        check_int(self.task_limit, "evaluation.task_limit", optional=True)
        if not isinstance(self.dense, bool):
            raise SpecError("evaluation.dense: must be a boolean", "evaluation.dense")


@dataclass(frozen=True)
class PruneSpec:
    """One pruning run: method, target sparsity or N:M pattern, method options, calibration.

    `sparsity` is the fraction of zeros in every pruned layer; an N:M pattern implies it (giving a
    different sparsity too is an error). `ignore` holds substrings of linear-layer names
    (relative to a decoder block or absolute) that are left dense. Embeddings and lm_head live
    outside the decoder blocks and are never pruned.
    """

    method: str
    sparsity: float | None = None  # None: DEFAULT_SPARSITY, or the pattern's
    pattern: Pattern = field(default_factory=Pattern)
    options: Mapping[str, Any] = field(default_factory=dict)
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    quant: QuantSpec | None = None  # joint quantization of the kept weights
    # how the target is spread over the layers (spec.profile); `sparsity` stays the global target
    profile: SparsityProfile = field(default_factory=SparsityProfile)
    # weight α of the dense model's layer outputs in each layer's reconstruction target
    # (pruning_core/dense_target.py); 0 reconstructs on the pruned inputs alone, as in the papers
    dense_target: float = 0.0

    def __post_init__(self) -> None:
        method = _choice(self.method, tuple(DECLARED), "method", "method")
        errors: list[SpecError] = []
        try:
            object.__setattr__(self, "dense_target", _dense_target(self.dense_target, DECLARED[method]))
        except SpecError as exc:
            errors.append(exc)
        try:
            if isinstance(self.pattern, str):
                object.__setattr__(self, "pattern", Pattern.parse(self.pattern))
            object.__setattr__(self, "sparsity", _sparsity(self.sparsity, self.pattern))
            object.__setattr__(self, "profile", SparsityProfile.from_value(self.profile))
            self.profile.check_pattern(self.pattern.is_nm)
        except SpecError as exc:
            errors.extend(exc.all())
        try:  # the declared options, checked: a mapping of names to values, or the options object
            values = dataclasses.asdict(self.options) if dataclasses.is_dataclass(self.options) else self.options
            object.__setattr__(self, "options", dataclasses.asdict(DECLARED[method].build(values)))
        except SpecError as exc:
            errors.extend(exc.all())
        if self.quant is not None and not DECLARED[method].supports_quant:
            errors.append(SpecError(f"quantize: method {method} has no joint quantization; use one of: "
                                    f"{', '.join(QUANT_METHODS)}", "quantize"))
        if errors:
            raise SpecError.combine(errors)
        object.__setattr__(self, "ignore", tuple(self.ignore))

    @property
    def declared(self):
        return DECLARED[self.method]

    def method_options(self) -> Any:
        """The method's options as its frozen dataclass (every value checked)."""
        return self.declared.options_class(**self.options)

    def at(self, sparsity: float) -> PruneSpec:
        """This spec with another sparsity: one layer's share under a profile."""
        return dataclasses.replace(self, sparsity=sparsity)

    @property
    def reads_data(self) -> bool:
        """Whether the run needs calibration data: the method's statistics, or OWL's outlier ratios."""
        return self.declared.stats != "none" or self.profile.kind == "owl"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "sparsity": self.sparsity,
            "pattern": str(self.pattern),
            "options": dict(self.options),
            "calibration": dataclasses.asdict(self.calibration),
            "ignore": list(self.ignore),
            "quantize": dataclasses.asdict(self.quant) if self.quant else None,
            "sparsity_profile": self.profile.to_dict(),
            "dense_target": self.dense_target,
        }


def _dense_target(value: Any, declared) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise SpecError(f"dense_target: must be a number in [0, 1], got {value!r}", "dense_target")
    if value and declared.stats != "gram":
        users = ", ".join(name for name, m in DECLARED.items() if m.stats == "gram")
        raise SpecError(f"dense_target: method {declared.name} reconstructs nothing; the dense target needs a method "
                        f"that reads H ({users})", "dense_target")
    return float(value)


def _sparsity(value: Any, pattern: Pattern) -> float:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value) or not 0.0 <= value < 1.0):
        raise SpecError(f"sparsity: must be a number in [0, 1), got {value!r}", "sparsity")
    if pattern.is_nm:
        if value is not None and abs(value - pattern.sparsity) > 1e-9:
            raise SpecError(f"sparsity: {value} contradicts pattern {pattern} (sparsity {pattern.sparsity:g}); "
                            f"give one or the other", "sparsity")
        return pattern.sparsity
    return DEFAULT_SPARSITY if value is None else float(value)


@dataclass(frozen=True)
class JobSpec:
    """A whole job: the model to open, the pruning run, evaluation, storage dtype and device, and
    the quality gates its report must meet (spec.gates; the pipeline ignores them, the worker
    decides the outcome from them)."""

    model: str
    spec: PruneSpec
    evaluation: EvalSpec = field(default_factory=EvalSpec)
    dtype: str = "auto"
    device: str = "auto"
    gates: Gates | None = None
    # a sweep: the same job at each of these settings (sparsities "0.6", patterns "2:4"), one
    # checkpoint per point; `spec`'s own sparsity and pattern are then unused
    sweep: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        errors = []
        if not isinstance(self.model, str) or not self.model.strip():
            errors.append(SpecError("model: must name a bundled model, a model directory or a hub id", "model"))
        if self.dtype not in DTYPES:
            errors.append(SpecError(f"dtype: unknown dtype {self.dtype!r}; choose from {', '.join(DTYPES)}", "dtype"))
        if not isinstance(self.device, str) or not DEVICE.match(self.device):
            errors.append(SpecError(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}", "device"))
        try:
            object.__setattr__(self, "sweep", _sweep(self.sweep, self.spec))
        except SpecError as exc:
            errors.extend(exc.all())
        if self.sweep and self.gates is not None:
            errors.append(SpecError("gates: not with a sweep (each point is a setting to compare, not a release)", "gates"))
        if self.gates is not None:
            try:
                ev = self.evaluation
                self.gates.check_evaluation(ev.dense, ev.datasets, ev.tasks)
            except SpecError as exc:
                errors.extend(exc.all())
        if errors:
            raise SpecError.combine(errors)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], text_options: bool = False) -> JobSpec:
        """Build from the JSON form, checking every section; one SpecError lists all bad fields.
        `text_options`: option values may be command-line strings, parsed by the option's type."""
        errors: list[SpecError] = []

        def section(build: Callable[[], Any]) -> Any:
            try:
                return build()
            except SpecError as exc:
                errors.extend(exc.all())
                return None

        known = {"model", "method", "sparsity", "pattern", "options", "quantize", "calibration", "evaluation",
                 "dtype", "device", "ignore", "sparsity_profile", "gates", "sweep",
                 "dense_target"}
        for key in body:
            if key not in known:
                errors.append(SpecError(f"{key}: unknown field", str(key)))
        cal = _object(body, "calibration", errors)
        ev = _object(body, "evaluation", errors)
        quant = body.get("quantize")
        calibration = section(lambda: CalibrationSpec(**_fields(cal, CalibrationSpec, "calibration")))
        quant_spec = section(lambda: None if quant is None else QuantSpec(**_fields(quant, QuantSpec, "quantize")))
        evaluation = section(lambda: EvalSpec(**_fields(ev, EvalSpec, "evaluation")))
        gates = section(lambda: Gates.from_value(body.get("gates")))
        sweep = body.get("sweep") or ()
        if sweep and (body.get("sparsity") is not None or body.get("pattern") is not None):
            errors.append(SpecError("sweep: give the settings in sweep alone, without sparsity or pattern", "sweep"))
        method = body.get("method")
        options = body.get("options") or {}
        if not isinstance(options, Mapping):
            errors.append(SpecError("options: must be an object of option names to values", "options"))
            options = {}
        if text_options and method in DECLARED:
            options = section(lambda: dataclasses.asdict(DECLARED[method].build(options, text=True))) or {}
        pattern = section(lambda: Pattern.parse(body.get("pattern")))
        prune = section(lambda: PruneSpec(method, body.get("sparsity"), pattern or Pattern(), options,
                                          calibration or CalibrationSpec(), tuple(body.get("ignore", DEFAULT_IGNORE)),
                                          quant_spec, body.get("sparsity_profile"), body.get("dense_target")))
        job = section(lambda: cls(body.get("model", ""), prune or _PLACEHOLDER, evaluation or EvalSpec(),
                                  body.get("dtype", "auto"), body.get("device", "auto"), gates, sweep))
        if errors:
            raise SpecError.combine(errors)
        return job

    def to_dict(self) -> dict[str, Any]:
        out = {"model": self.model, **self.spec.to_dict(), "dtype": self.dtype, "device": self.device}
        ev = dataclasses.asdict(self.evaluation)
        out["evaluation"] = {**ev, "datasets": list(ev["datasets"]), "tasks": list(ev["tasks"])}
        out["gates"] = self.gates.to_dict() if self.gates else None
        out["sweep"] = list(self.sweep) or None
        if self.sweep:  # the points carry the settings
            out["sparsity"] = out["pattern"] = None
        return out

    def points(self) -> list[tuple[str, JobSpec]]:
        """A sweep's points as (setting, the job at that setting, without the sweep)."""
        return [(label, dataclasses.replace(self, spec=_at_setting(self.spec, label), sweep=())) for label in self.sweep]


def _at_setting(spec: PruneSpec, label: str) -> PruneSpec:
    """`spec` at one sweep setting: an N:M pattern, or an unstructured sparsity."""
    if ":" in label:
        return dataclasses.replace(spec, sparsity=None, pattern=Pattern.parse(label))
    return dataclasses.replace(spec, sparsity=float(label), pattern=Pattern())


def _sweep(raw: Any, spec: PruneSpec) -> tuple[str, ...]:
    """A sweep's settings as labels ("0.6", "2:4"), each checked as the job at that setting."""
    if raw is None or raw == ():
        return ()
    if isinstance(raw, (str, bytes)) or not isinstance(raw, (list, tuple)) or not 2 <= len(raw) <= MAX_SWEEP_POINTS:
        raise SpecError(f"sweep: must be a list of 2 to {MAX_SWEEP_POINTS} sparsities or N:M patterns", "sweep")
    labels, errors = [], []
    for i, value in enumerate(raw):
        where = f"sweep[{i}]"
        try:
            if isinstance(value, str) and ":" in value:
                pattern = Pattern.parse(value)
                labels.append(str(pattern))
            else:
                labels.append(f"{_sparsity(float(value) if isinstance(value, str) else value, Pattern()):g}")
            _at_setting(spec, labels[-1])  # the profile's and the method's rules at this setting
        except (SpecError, ValueError) as exc:
            message = str(exc).split(": ", 1)[-1]
            errors.append(SpecError(f"{where}: {message}", where))
    if not errors and len(set(labels)) != len(labels):
        errors.append(SpecError("sweep: names a setting twice", "sweep"))
    if errors:
        raise SpecError.combine(errors)
    return tuple(labels)


_PLACEHOLDER = PruneSpec("magnitude")  # stands in for a bad PruneSpec while the other fields are checked


def _object(body: Mapping[str, Any], key: str, errors: list) -> Mapping[str, Any]:
    value = body.get(key) or {}
    if not isinstance(value, Mapping):
        errors.append(SpecError(f"{key}: must be an object", key))
        return {}
    return value


def _fields(raw: Mapping[str, Any], cls: type, where: str) -> dict[str, Any]:
    """Keyword arguments of `cls` from a JSON object; an unknown key names its field."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: must be an object", where)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise SpecError(f"{where}.{key}: unknown field (known: {', '.join(sorted(names))})", f"{where}.{key}")
    return dict(raw)
