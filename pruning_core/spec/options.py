"""Declared method options: name, type, range, default and a one-line description.

A method's options are declared once here (torch-free), so that the API checks them at
submission, `GET /v1/methods` and `topiary methods` list them, and the implementation receives
them as a frozen dataclass generated from the same declaration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string"}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Option:
    """One tunable. Bounds are inclusive unless `open_low`/`open_high`; `choices` for strings."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()

    def check(self, value: Any, field: str) -> Any:
        """A JSON value -> the option's value, or SpecError naming `field`."""
        kind = _TYPE_NAMES[self.type]
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            if isinstance(value, float) and value.is_integer():  # 3.0 from a client that has only floats
                value, ok = int(value), True
        elif self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, str)
        if not ok:
            raise SpecError(f"{field}: must be {'a finite ' if self.type is float else 'an ' if kind[0] in 'ai' else 'a '}"
                            f"{kind}, got {value!r}", field)
        if self.choices and value not in self.choices:
            raise SpecError(f"{field}: must be one of {', '.join(self.choices)}, got {value!r}", field)
        if self.type in (int, float):
            too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
            too_high = self.high is not None and (value >= self.high if self.open_high else value > self.high)
            if too_low or too_high:
                raise SpecError(f"{field}: must be {self.range_text()}, got {value!r}", field)
        return value

    def parse_text(self, text: str, field: str) -> Any:
        """A command-line string (`-o name=value`) -> the option's value, with the same errors."""
        raw = text.strip()
        value: Any = raw
        if self.type is bool and raw.lower() in _TRUE + _FALSE:
            value = raw.lower() in _TRUE
        elif self.type in (int, float):
            try:
                value = int(raw) if self.type is int else float(raw)
            except ValueError:
                try:
                    value = float(raw)  # "1.5" for an integer: the type error below names it
                except ValueError:
                    pass
        return self.check(value, field)

    def range_text(self) -> str:
        low = "" if self.low is None else f"{self.low:g} {'<' if self.open_low else '<='} "
        high = "" if self.high is None else f" {'<' if self.open_high else '<='} {self.high:g}"
        return f"{low}{self.name}{high}" if (low or high) else "any value"

    def describe(self) -> dict[str, Any]:
        """The option as `GET /v1/methods` and the JSON schema show it."""
        out: dict[str, Any] = {"name": self.name, "type": _TYPE_NAMES[self.type], "default": self.default,
                               "description": self.help}
        if self.low is not None:
            out["exclusiveMinimum" if self.open_low else "minimum"] = self.low
        if self.high is not None:
            out["exclusiveMaximum" if self.open_high else "maximum"] = self.high
        if self.choices:
            out["enum"] = list(self.choices)
        return out


# the statistics a method reads, in increasing cost: the driver accumulates only what is asked
STATS = ("none", "norms", "gram")


@dataclass(frozen=True)
class MethodSpec:
    """A method as the job spec knows it. `stats`: "none" (no calibration data at all), "norms"
    (‖X_j‖² per input feature) or "gram" (the full H = X Xᵀ). `rules` check combinations of
    options: each returns an error message or None."""

    name: str
    summary: str
    stats: str
    options: tuple[Option, ...] = ()
    supports_quant: bool = False
    rules: tuple[Callable[[Any], str | None], ...] = ()

    def __post_init__(self) -> None:
        assert self.stats in STATS, self.stats
        fields = [(o.name, o.type, dataclasses.field(default=o.default)) for o in self.options]
        spec = self

        def __post_init__(values) -> None:  # the generated dataclass validates itself
            spec._validate(values)

        cls = dataclasses.make_dataclass(f"{self.name.title()}Options", fields, frozen=True,
                                         namespace={"__post_init__": __post_init__, "__module__": __name__})
        object.__setattr__(self, "options_class", cls)

    def option(self, name: str) -> Option:
        return {o.name: o for o in self.options}[name]

    def _validate(self, values: Any) -> None:
        for o in self.options:
            o.check(getattr(values, o.name), f"options.{o.name}")
        for rule in self.rules:
            message = rule(values)
            if message:
                raise SpecError(f"options: {message}", "options")

    def build(self, raw: Mapping[str, Any], text: bool = False) -> Any:
        """The options dataclass from a JSON object (or `-o` strings when `text`), every name and
        value checked; unknown names name the field and list the known ones."""
        known = {o.name: o for o in self.options}
        values, errors = {}, []
        for key, value in raw.items():
            field = f"options.{key}"
            try:
                if key not in known:
                    listed = ", ".join(known) or "none"
                    raise SpecError(f"{field}: method {self.name} has no option {key!r} (its options: {listed})", field)
                values[key] = known[key].parse_text(value, field) if text and isinstance(value, str) else \
                    known[key].check(value, field)
            except SpecError as exc:
                errors.append(exc)
        if errors:
            raise SpecError.combine(errors)
        return self.options_class(**values)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary, "statistics": self.stats,
                "joint_quantization": self.supports_quant, "options": [o.describe() for o in self.options]}
