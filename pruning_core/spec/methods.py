"""The pruning methods as the job spec knows them: what each is, which statistics it reads and
every option it takes. The implementations in `pruning_core/methods/` register against these
declarations (tests/unit/test_spec_registry.py fails when the two disagree)."""

from __future__ import annotations

from .options import MethodSpec, Option

_PERCDAMP = Option("percdamp", float, 0.01, "ridge added to H as a fraction of its mean diagonal", low=0.0)

MAGNITUDE = MethodSpec("magnitude", "zero the smallest |W| per layer; no data, no update", stats="none")

WANDA = MethodSpec("wanda", "|W|·‖X‖ score per output row; no update", stats="norms")

SPARSEGPT = MethodSpec(
    "sparsegpt", "OBS column sweep with Cholesky of H⁻¹ (Frantar & Alistarh 2023)", stats="gram",
    supports_quant=True,
    options=(
        Option("blocksize", int, 128, "columns per lazy-update block", low=1, high=65536),
        _PERCDAMP,
    ),
)

ALPS = MethodSpec(
    "alps", "ADMM with adaptive penalty + CG refit on the support (Meng et al. 2024)", stats="gram",
    options=(
        _PERCDAMP,
        Option("rho0", float, 0.1, "initial ADMM penalty ρ, in unit-diagonal units", low=0.0, open_low=True),
        Option("max_iter", int, 300, "ADMM iterations at most", low=1, high=100_000),
        Option("update_iter", int, 3, "ρ is revisited every this many iterations", low=1, high=100_000),
        Option("switch_iter", int, 30, "from this iteration on a near-frozen support stops ADMM", low=0, high=100_000),
        Option("rho_max", float, 1e6, "largest ρ", low=0.0, open_low=True),
        Option("grow_fast", float, 1.3, "ρ multiplier when the support change rate exceeds fast_rate", low=1.0),
        Option("grow_mid", float, 1.2, "ρ multiplier when the support change rate exceeds mid_rate", low=1.0),
        Option("grow_slow", float, 1.1, "ρ multiplier when something still moves after ρ has grown", low=1.0),
        Option("shrink", float, 5.0, "ρ divisor when ρ started too large", low=1.0),
        Option("fast_rate", float, 0.1, "support change rate that grows ρ fast", low=0.0, high=1.0),
        Option("mid_rate", float, 0.005, "support change rate that grows ρ moderately", low=0.0, high=1.0),
        Option("stop_rate", float, 3e-4, "support change rate below which ADMM stops", low=0.0, high=1.0),
        Option("restart", bool, True, "the ρ÷shrink branch restarts from the initial iterate"),
        Option("refit", bool, True, "conjugate-gradient least-squares refit on the final support"),
        Option("cg_rtol", float, 1e-4, "refit: on-support residual relative to ‖G_S‖, per column", low=0.0),
        Option("cg_ftol", float, 1e-6, "refit: stop once a step lowers the objective by less than this share", low=0.0),
        Option("cg_max_iter", int, 100, "refit: CG iterations at most", low=0, high=100_000),
    ),
    rules=(lambda o: "need rho0 <= rho_max" if o.rho0 > o.rho_max else None,),
)

PGZ = MethodSpec(
    "pgz", "gradual masks + Lion reconstruction pushing S = 2L(w−w₀) to 0", stats="gram", supports_quant=True,
    options=(
        Option("step", float, 0.1, "sparsity added per gradual step", low=0.0, high=1.0, open_low=True),
        Option("s0", float, 0.0, "sparsity before the first step", low=0.0, high=1.0, open_high=True),
        Option("smoothing", float, 0.1, "weight of the previous smoothed score", low=0.0, high=1.0, open_high=True),
        Option("iters", int, 100, "Lion iterations per step", low=0, high=100_000),
        Option("tol", float, 1e-4, "stop a step when ‖S‖² improved by less than this share ...", low=0.0),
        Option("patience", int, 10, "... over this many iterations", low=1, high=100_000),
        Option("lr", float, 0.04, "Lion step relative to RMS(W̃₀)", low=0.0, open_low=True),
        Option("absolute_lr", bool, False, "take lr as an absolute step"),
        Option("beta1", float, 0.9, "Lion interpolation factor", low=0.0, high=1.0),
        Option("beta2", float, 0.99, "Lion momentum decay", low=0.0, high=1.0),
        Option("mix", float, 1.4, "ρ of the modified Lion: v = ρ·sign(c) + (2−ρ)·G", low=0.0, high=2.0),
        Option("weight_decay", float, 0.01, "decoupled weight decay towards 0", low=0.0),
        Option("l1", float, 0.0, "weight of ‖S‖₁, in units of the typical |S|", low=0.0),
        Option("l2", float, 1.0, "relative weight of ‖S‖²", low=0.0),
        _PERCDAMP,
        Option("eps", float, 1e-8, "ε of the per-feature RMS", low=0.0),
        Option("order_free_diag", bool, False, "score denominator 1/sqrt((H̃⁻¹)_jj) instead of L_jj"),
        Option("carry_state", bool, False, "keep the Lion state across gradual steps"),
        Option("nm_single_step", bool, False, "N:M in one step instead of gradually"),
        Option("center", bool, False, "center the inputs (with bias compensation)"),
        Option("straight_through", bool, False, "quantize without error-compensated rounding"),
        Option("group", str, "layer", "comparison group of unstructured masks", choices=("layer", "row")),
        Option("record_trace", bool, False, "keep ‖S‖² per iteration of the last step in the report"),
    ),
    rules=(lambda o: "l1 and l2 cannot both be 0" if o.l1 + o.l2 == 0 else None,),
)

DECLARED: dict[str, MethodSpec] = {m.name: m for m in (MAGNITUDE, WANDA, SPARSEGPT, ALPS, PGZ)}
QUANT_METHODS = tuple(name for name, m in DECLARED.items() if m.supports_quant)
