"""Sparsity profiles: how one global sparsity target is spread over the pruned layers.

* `uniform`: every layer at the target (the default, and bit-identical to the code before
  profiles existed).
* `owl`: outlier-weighted layerwise sparsity (Yin et al. 2024): a block whose activation-weighted
  scores |W|·‖x‖ hold more outliers (above `owl_m` times their mean) gets less sparsity, spread
  over ±`owl_lambda` around the target.
* `rules`: an ordered list of {match, sparsity}; the first rule whose regex is found in a layer's
  name fixes that layer's sparsity (0 leaves it dense). Rules may also go with `uniform` or `owl`.

Whatever the profile, the layers no rule fixes share the rest of the budget so that the zeros over
all pruned layers equal the target (`plan`). This module is torch-free: the API checks a profile
against a model's layer layout (spec.layout) before queueing; the driver plans with the real
layers and the measured outlier ratios.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex

from ..errors import SpecError

KINDS = ("uniform", "owl", "rules")
OWL_M = 5.0  # the OWL paper's and llm-compressor's defaults
OWL_LAMBDA = 0.08
OWL_M_RANGE = (1.0, 1000.0)  # a threshold below the mean would call most weights outliers
OWL_LAMBDA_RANGE = (0.0, 0.5)  # the spread is ±λ around the target: beyond 0.5 it is meaningless
MAX_LAYER_SPARSITY = 0.999  # what a planned layer may reach; a rule may ask for anything below 1
FIELD = "sparsity_profile"
# rules are user regexes run in the API process: `regex` (re-compatible syntax) gives matching a
# time limit, so a pathological pattern such as (.*)*x is refused instead of pinning a thread
MATCH_SECONDS = 1.0


@dataclass(frozen=True)
class Rule:
    match: str
    sparsity: float

    def check(self, where: str) -> list[SpecError]:
        errors = []
        if not isinstance(self.match, str) or not self.match:
            errors.append(SpecError(f"{where}.match: must be a regular expression on layer names", f"{where}.match"))
        else:
            try:
                regex.compile(self.match)
            except (regex.error, OverflowError, RecursionError) as exc:
                errors.append(SpecError(f"{where}.match: does not compile: {exc}", f"{where}.match"))
        s = self.sparsity
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s < 1.0:
            errors.append(SpecError(f"{where}.sparsity: must be a number in [0, 1), got {s!r}", f"{where}.sparsity"))
        return errors


@dataclass(frozen=True)
class SparsityProfile:
    kind: str = "uniform"
    owl_m: float = OWL_M
    owl_lambda: float = OWL_LAMBDA
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        errors: list[SpecError] = []
        if self.kind not in KINDS:
            errors.append(SpecError(f"{FIELD}.kind: unknown profile {self.kind!r}; choose from {', '.join(KINDS)}",
                                    f"{FIELD}.kind"))
        for name, (low, high) in (("owl_m", OWL_M_RANGE), ("owl_lambda", OWL_LAMBDA_RANGE)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                errors.append(SpecError(f"{FIELD}.{name}: must be a number in [{low:g}, {high:g}], got {value!r}",
                                        f"{FIELD}.{name}"))
        rules = tuple(Rule(**r) if isinstance(r, Mapping) else r for r in self.rules)
        for i, rule in enumerate(rules):
            errors.extend(rule.check(f"{FIELD}.rules[{i}]"))
        if self.kind == "rules" and not rules:
            errors.append(SpecError(f"{FIELD}.rules: the rules profile needs at least one rule", f"{FIELD}.rules"))
        if errors:
            raise SpecError.combine(errors)
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "owl_m", float(self.owl_m))
        object.__setattr__(self, "owl_lambda", float(self.owl_lambda))

    @classmethod
    def from_value(cls, value: Any) -> SparsityProfile:
        """None | "uniform" | "owl" | {"kind", "owl_m", "owl_lambda", "rules": [{"match", "sparsity"}]}."""
        if value is None:
            return cls()
        if isinstance(value, SparsityProfile):
            return value
        if isinstance(value, str):
            return cls(kind=value)
        if not isinstance(value, Mapping):
            raise SpecError(f"{FIELD}: must be a profile name or an object", FIELD)
        known = {"kind", "owl_m", "owl_lambda", "rules"}
        unknown = [k for k in value if k not in known]
        if unknown:
            raise SpecError(f"{FIELD}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})",
                            f"{FIELD}.{unknown[0]}")
        rules = value.get("rules") or []
        if not isinstance(rules, (list, tuple)):
            raise SpecError(f"{FIELD}.rules: must be a list of {{match, sparsity}}", f"{FIELD}.rules")
        for i, rule in enumerate(rules):
            if not isinstance(rule, Mapping) or set(rule) != {"match", "sparsity"}:
                raise SpecError(f"{FIELD}.rules[{i}]: must be an object with exactly match and sparsity",
                                f"{FIELD}.rules[{i}]")
        kind = value.get("kind", "rules" if rules else "uniform")
        return cls(kind, value.get("owl_m", OWL_M), value.get("owl_lambda", OWL_LAMBDA), tuple(rules))

    @property
    def is_uniform(self) -> bool:
        """Every layer at the target: nothing to plan."""
        return self.kind == "uniform" and not self.rules

    def check_pattern(self, is_nm: bool) -> None:
        """With N:M every pruned layer has the pattern's sparsity: only rules that leave layers
        dense make sense."""
        if not is_nm:
            return
        errors = []
        if self.kind == "owl":
            errors.append(SpecError(f"{FIELD}.kind: owl varies sparsity per layer, which an N:M pattern fixes; "
                                    "use unstructured sparsity or rules with sparsity 0", f"{FIELD}.kind"))
        for i, rule in enumerate(self.rules):
            if rule.sparsity != 0:
                errors.append(SpecError(f"{FIELD}.rules[{i}].sparsity: with an N:M pattern a rule can only leave "
                                        "layers dense (sparsity 0)", f"{FIELD}.rules[{i}].sparsity"))
        if errors:
            raise SpecError.combine(errors)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "owl_m": self.owl_m, "owl_lambda": self.owl_lambda,
                "rules": [{"match": r.match, "sparsity": r.sparsity} for r in self.rules]}


@dataclass(frozen=True)
class LayerSlot:
    """One prunable layer as the planner sees it: its name, shape and block index. `unit`: the
    number of weights one more pruned "step" costs (the row count for a method that prunes the same
    count in every row, else 1), so the planned zero count is one the method can hit."""

    name: str
    rows: int
    cols: int
    block: int
    unit: int = 1

    @property
    def size(self) -> int:
        return self.rows * self.cols


def fixed_by_rules(slots: Sequence[LayerSlot], profile: SparsityProfile) -> dict[str, float]:
    """name -> sparsity for each layer a rule matches (the first matching rule wins); a rule that
    matches no layer is an error naming it."""
    fixed: dict[str, float] = {}
    hits, shadowed = [0] * len(profile.rules), [0] * len(profile.rules)
    compiled = [regex.compile(r.match) for r in profile.rules]
    deadline = time.monotonic() + MATCH_SECONDS

    def found(i: int, name: str) -> bool:
        try:
            return compiled[i].search(name, timeout=max(1e-3, deadline - time.monotonic())) is not None
        except TimeoutError:
            raise SpecError(f"{FIELD}.rules[{i}].match: takes too long to match layer names; simplify the pattern",
                            f"{FIELD}.rules[{i}].match") from None

    for slot in slots:
        matching = [i for i in range(len(compiled)) if found(i, slot.name)]
        if matching:
            fixed[slot.name] = float(profile.rules[matching[0]].sparsity)
            hits[matching[0]] += 1
            for i in matching[1:]:
                shadowed[i] += 1
    errors = [SpecError(f"{FIELD}.rules[{i}].match: '{profile.rules[i].match}' "
                        + ("only matches layers an earlier rule takes (the first match wins)" if shadowed[i] else
                           f"matches no prunable layer (they are named like {slots[0].name if slots else 'none'})"),
                        f"{FIELD}.rules[{i}].match")
              for i, n in enumerate(hits) if n == 0]
    if errors:
        raise SpecError.combine(errors)
    return fixed


def owl_offsets(ratios: Sequence[float], lam: float) -> list[float]:
    """Per-block sparsity offsets from outlier ratios: min-max scaled onto [0, 2λ] and negated, so
    the block with the most outliers is 2λ below the one with the fewest (the mean is set by
    `plan`)."""
    low, high = min(ratios), max(ratios)
    if high - low <= 0:
        return [0.0] * len(ratios)
    return [-(r - low) / (high - low) * 2 * lam for r in ratios]


def plan(slots: Sequence[LayerSlot], target: float, profile: SparsityProfile,
         ratios: Sequence[float] | None = None) -> dict[str, float]:
    """name -> sparsity for every layer, with Σ zeros = target · Σ weights to one `unit`.

    Rule-fixed layers take their rule's value; the others share the remaining zeros: uniformly,
    or (owl) offset per block by `owl_offsets(ratios)`, shifted by one constant (found by
    bisection where clipping to [0, MAX_LAYER_SPARSITY] bites) so their weighted mean is exact.
    Zero counts are rounded in layer order carrying the remainder forward (error diffusion), so
    the total stays within half a unit of the target. Raises SpecError when the rules leave a
    share the other layers cannot take."""
    ruled = fixed_by_rules(slots, profile)
    fixed = {s.name: _steps(s, ruled[s.name] * s.size) / s.size for s in slots if s.name in ruled}
    free = [s for s in slots if s.name not in fixed]
    total = sum(s.size for s in slots)
    wanted = target * total - sum(fixed[s.name] * s.size for s in slots if s.name in fixed)
    free_size = sum(s.size for s in free)
    if not free:
        if abs(wanted) > max(s.unit for s in slots) / 2 * len(slots):
            achieved = 1 - (total - sum(fixed[s.name] * s.size for s in slots)) / total
            raise SpecError(f"{FIELD}.rules: the rules fix every layer, at {achieved:.4f} overall, not the target "
                            f"{target:g}; drop a rule or change the sparsity", f"{FIELD}.rules")
        return fixed
    share = wanted / free_size
    if not 0.0 <= share <= MAX_LAYER_SPARSITY:
        raise SpecError(f"{FIELD}.rules: after the rules, the other layers would need sparsity {share:.4f} to reach "
                        f"{target:g} overall; the target cannot be reached with these rules", f"{FIELD}.rules")
    offsets = [0.0] * len(free)
    if profile.kind == "owl" and ratios is not None:
        per_block = owl_offsets(ratios, profile.owl_lambda)
        offsets = [per_block[s.block] for s in free]
    level = _level(free, offsets, wanted)
    out = dict(fixed)
    carried = 0.0  # zeros asked for minus zeros assigned so far
    for slot, offset in zip(free, offsets):
        want = slot.size * _clip(level + offset) + carried
        zeros = _steps(slot, want)
        carried = want - zeros
        out[slot.name] = zeros / slot.size
    return out


def _steps(slot: LayerSlot, zeros: float) -> int:
    """The zero count nearest `zeros` that the method can hit on this layer (whole units)."""
    return min(slot.size, max(0, round(zeros / slot.unit) * slot.unit))


def _clip(s: float) -> float:
    return min(MAX_LAYER_SPARSITY, max(0.0, s))


def _level(free: Sequence[LayerSlot], offsets: Sequence[float], wanted: float) -> float:
    """The shift c with Σ size · clip(c + offset) = wanted (monotone in c: bisection)."""
    def zeros(c: float) -> float:
        return sum(s.size * _clip(c + o) for s, o in zip(free, offsets))

    low, high = -1.0 - max(offsets, default=0.0), 1.0 - min(offsets, default=0.0)
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if zeros(mid) < wanted else (low, mid)
    return (low + high) / 2
