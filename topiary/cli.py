"""`topiary` command line. Subcommands import their heavy dependencies lazily, so `topiary --help`
is fast and the service commands never load torch."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

import typer

from pruning_core.spec import CalibrationSpec
from pruning_core.spec.profile import OWL_LAMBDA, OWL_M

_CAL = CalibrationSpec()  # the spec's defaults, shown by --help

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Topiary: one-shot pruning of large language models.",
)


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit code 2, never a traceback."""
    typer.echo(f"topiary: error: {message}", err=True)
    raise typer.Exit(2)


def _parse_options(pairs: list[str]) -> dict:
    """-o KEY=VALUE pairs as strings; the job spec parses each by its declared type."""
    options = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = raw
    return options


def _profile(kind: str | None, owl_m: float | None, owl_lambda: float | None, rules: list[str]) -> dict:
    """The profile flags as the job body's sparsity_profile (the spec checks every value)."""
    if (owl_m is not None or owl_lambda is not None) and kind != "owl":
        fail("--owl-m and --owl-lambda need --sparsity-profile owl")
    body: dict = {"kind": kind or ("rules" if rules else "uniform"), "rules": []}
    body.update({k: v for k, v in (("owl_m", owl_m), ("owl_lambda", owl_lambda)) if v is not None})
    for i, rule in enumerate(rules):
        match, sep, value = rule.rpartition("=")
        try:
            body["rules"].append({"match": match, "sparsity": float(value)})
        except ValueError:
            sep = ""
        if not sep or not match:
            fail(f"sparsity_profile.rules[{i}]: --sparsity-rule expects REGEX=SPARSITY, got {rule!r}")
    return body


class _Bar:
    """tqdm bar over pruned layers plus one stderr line per stage."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.stage = None

    def __call__(self, p) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if p.stage != self.stage and p.stage != "pruning":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            typer.echo(f"[{p.stage}]", err=True)
        self.stage = p.stage
        if p.stage == "pruning":
            if self.bar is None:
                self.bar = tqdm(total=p.layers_total, unit="layer", desc="pruning", file=sys.stderr)
            self.bar.update(p.layers_done - self.bar.n)
            if p.layer is not None:
                err = "-" if p.layer.rel_error is None else f"{p.layer.rel_error:.2e}"
                self.bar.set_postfix_str(f"{p.layer.name.split('.', 2)[-1]} err={err}")


def _summary(report: dict, out: Path) -> str:
    lines = [
        f"method      {report['method']} ({report['pattern']}, target sparsity {report['sparsity_target']:.3f})",
        f"sparsity    {report['sparsity_achieved']:.4f} achieved over {len(report['layers'])} layers",
    ]
    profile = report.get("sparsity_profile") or {}
    if profile.get("kind", "uniform") != "uniform" or profile.get("rules"):
        targets = [layer["target"] for layer in report["layers"] if layer.get("target") is not None]
        knobs = f" (M {profile['owl_m']:g}, lambda {profile['owl_lambda']:g})" if profile["kind"] == "owl" else ""
        rules = f", {len(profile['rules'])} rule(s)" if profile.get("rules") else ""
        lines.append(f"profile     {profile['kind']}{knobs}{rules}: layer targets {min(targets):.3f}..{max(targets):.3f}")
    for name, ppl in report["perplexity"].items():
        dense = f"{ppl['dense']:.3f}" if ppl["dense"] is not None else "-"
        lines.append(f"{name:<12}dense {dense} -> pruned {ppl['pruned']:.3f} ({ppl['windows']} x {ppl['seqlen']} tokens)")
    for name, zs in report.get("zero_shot", {}).items():
        metric = "acc_norm" if "acc_norm" in zs["pruned"] else "acc"
        dense = f"{zs['dense'][metric]:.3f}" if zs["dense"] else "-"
        lines.append(f"{name:<12}{metric} dense {dense} -> pruned {zs['pruned'][metric]:.3f} ({zs['docs']} items)")
    q = report.get("quantization")
    if q:
        lines.append(f"quantized   int{q['bits']}: {q['bits_per_weight']:.2f} bits/weight for values, "
                     f"{q['bits_per_weight_with_mask']:.2f} with the mask")
        stored = q.get("checkpoint")
        if stored and stored["format"] == "packed":
            lines.append(f"checkpoint  packed (compressed-tensors): quantized layers take {stored['quantized_bytes']} bytes, "
                         f"{stored['ratio_to_bf16']:.3f}x their bf16 size")
    t = report["timings"]
    lines.append(f"time        {t['total']:.1f}s total, {t['prune']:.1f}s pruning on {report['device']}")
    lines.append(f"output      {out}/model (checkpoint), masks.safetensors, report.json")
    return "\n".join(lines)


def _gates(pairs: list[str]) -> dict:
    """--gate NAME=LIMIT pairs -> the spec's gates object (its checks name a bad one)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            fail(f"--gate: expected NAME=NUMBER, got {pair!r}")
        if not sep:
            fail(f"--gate: expected NAME=NUMBER, got {pair!r}")
    return out


def _baseline(path: Path | None, job) -> dict | None:
    """The report max_regression compares with: required by that gate, refused without it."""
    wants = job.gates is not None and "max_regression" in job.gates.active
    if wants != (path is not None):
        fail("--gate max_regression needs --baseline REPORT.json (the run it compares with), and --baseline that gate")
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        fail(f"--baseline {path}: {exc}")


def _sweep_summary(report: dict, out: Path) -> str:
    lines = [f"sweep       {report['method']} at {', '.join(report['sweep'])} ({report['seconds_total']:.1f}s in all)"]
    for p in report["points"]:
        ppl = ", ".join(f"{name} {r['pruned']:.3f}" for name, r in p["perplexity"].items())
        lines.append(f"{p['setting']:<12}sparsity {p['sparsity_achieved']:.4f}  {ppl}  -> {out}/{p['path']}/model")
    return "\n".join(lines)


@app.command()
def prune(
    model: str = typer.Option("smollm2-135m", help="Bundled name (smollm2-135m), model directory, .gguf file, or hub id."),
    method: str = typer.Option("sparsegpt", help="Pruning method: alps, pgz, sparsegpt, wanda, magnitude (details: `topiary methods`)."),
    sparsity: float | None = typer.Option(None, help="Fraction of weights to zero per layer, in [0, 1). Default 0.5."),
    pattern: str | None = typer.Option(None, help="N:M pattern (N kept of every M inputs), e.g. 2:4 or 4:8; replaces --sparsity."),
    sparsity_profile: str | None = typer.Option(None, help="How --sparsity is spread over the layers: uniform (default), "
                                                   "owl (outlier-weighted), rules (--sparsity-rule only)."),
    owl_m: float | None = typer.Option(None, help=f"OWL outlier threshold M (default {OWL_M:g})."),
    owl_lambda: float | None = typer.Option(None, help=f"OWL spread lambda: block sparsities within +-lambda of the "
                                               f"target (default {OWL_LAMBDA:g})."),
    sparsity_rule: list[str] = typer.Option([], "--sparsity-rule", help="REGEX=SPARSITY (repeatable, first match wins): "
                                            "layers whose name matches get that sparsity (0: dense); the others share "
                                            "the rest so the global target holds."),
    dense_target: float = typer.Option(0.0, help="Weight in [0, 1] of the dense model's layer outputs in each layer's "
                                       "reconstruction target (sparsegpt, alps, pgz); 0 reconstructs on the pruned "
                                       "inputs alone. Keeps a second activation stream."),
    sweep: str | None = typer.Option(None, help="Prune at each of these settings instead of one, comma-separated "
                                        "sparsities and N:M patterns (e.g. 0.4,0.5,0.6,2:4): one checkpoint per point "
                                        "under --out/points/, the dense evaluation shared."),
    gate: list[str] = typer.Option([], "--gate", help="Quality gate NAME=LIMIT (repeatable): max_ppl_ratio, max_ppl, "
                                   "min_zero_shot_retained, max_regression (needs --baseline). A broken gate: exit 3."),
    baseline: Path | None = typer.Option(None, help="report.json of the run max_regression compares with."),
    option: list[str] = typer.Option([], "--option", "-o", help="Method option KEY=VALUE (repeatable), e.g. -o blocksize=64."),
    quantize: str | None = typer.Option(None, help="Joint quantization of the kept weights, e.g. int4 (sparsegpt, pgz)."),
    group_size: int | None = typer.Option(None, help="Columns per quantization grid (default: one grid per output row)."),
    quantized_format: str | None = typer.Option(None, help="Checkpoint of a quantized job: packed (compressed-tensors "
                                                   "int codes + scales, the default) or dense (float values on the grid)."),
    calib: str = typer.Option(_CAL.source, help="Calibration source: c4, wikitext2, ptb, or a .txt/.jsonl file."),
    nsamples: int = typer.Option(_CAL.nsamples, help="Calibration sequences."),
    seqlen: int = typer.Option(_CAL.seqlen, help="Tokens per calibration sequence."),
    seed: int = typer.Option(_CAL.seed, help="Seed of the calibration draw."),
    eval: list[str] = typer.Option([], "--eval", help="Perplexity dataset (repeatable): wikitext2, ptb, c4."),
    eval_limit: int | None = typer.Option(None, help="Evaluate at most this many windows per dataset."),
    eval_seqlen: int | None = typer.Option(None, help="Evaluation window length (default: --seqlen)."),
    tasks: str | None = typer.Option(None, help="Zero-shot tasks, comma-separated: arc_easy, arc_challenge, "
                                        "openbookqa, piqa, boolq, rte, hellaswag, winogrande, lambada_openai."),
    task_limit: int | None = typer.Option(None, help="Score at most this many items per zero-shot task."),
    dense_eval: bool = typer.Option(True, "--dense-eval/--no-dense-eval", help="Also evaluate the dense model."),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu, cuda, cuda:N."),
    dtype: str = typer.Option("auto", help="Storage dtype: auto (the checkpoint's own), float32, bfloat16, float16."),
    out: Path | None = typer.Option(None, help="Output directory (must not exist or be empty)."),
    estimate: bool = typer.Option(False, "--estimate", help="Print what the job would need (memory, disk, time) "
                                  "on this machine, from the model's config.json alone, and exit."),
    data_dir: Path | None = typer.Option(None, help="Data directory (default: $TOPIARY_DATA_DIR or ../shared/data)."),
    allow_download: bool = typer.Option(False, help="Fetch missing datasets from the Hugging Face hub."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Prune a model, evaluate it, and write model/, masks.safetensors and report.json to --out."""
    from pruning_core.errors import TopiaryError
    from pruning_core.spec import JobSpec, QuantSpec

    # the same checks as the API's, all before torch is imported or anything is read
    try:
        quant = QuantSpec.parse(quantize, group_size, quantized_format)
        body = {
            "model": model, "method": method, "sparsity": sparsity, "pattern": pattern,
            "options": _parse_options(option), "quantize": dataclasses.asdict(quant) if quant else None,
            "calibration": {"source": calib, "nsamples": nsamples, "seqlen": seqlen, "seed": seed},
            "evaluation": {"datasets": list(eval), "seqlen": eval_seqlen, "limit": eval_limit,  # what --eval names
                           "dense": dense_eval, "task_limit": task_limit,
                           "tasks": [t.strip() for t in tasks.split(",") if t.strip()] if tasks else []},
            "dtype": dtype, "device": device,
            "sparsity_profile": _profile(sparsity_profile, owl_m, owl_lambda, sparsity_rule),
            "dense_target": dense_target,
            "sweep": [v.strip() for v in sweep.split(",") if v.strip()] if sweep else None,
            "gates": _gates(gate) or None,
        }
        job = JobSpec.from_dict(body, text_options=True)
        previous = _baseline(baseline, job)
    except TopiaryError as exc:
        fail(str(exc))
    if estimate:
        from topiary.estimate import show

        raise typer.Exit(show(job))
    if out is None:
        fail("missing option --out (the output directory)")

    from pruning_core import pipeline
    from pruning_core import sweep as sweeps
    from pruning_core.spec import gates as quality

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # run() checks the model, the data files and --out (pipeline.preflight) before it loads anything
        report = (sweeps.run if job.sweep else pipeline.run)(job, out, _Bar(quiet), data_dir, allow_download)
    except (TopiaryError, FileExistsError) as exc:
        fail(str(exc))
    typer.echo(_sweep_summary(report, out) if job.sweep else _summary(report, out))
    verdict = quality.verdict(job.gates, report, previous, str(baseline) if baseline else None)
    if verdict is not None:
        for check in verdict["checks"]:
            typer.echo(f"gate        {'pass' if check['passed'] else 'FAIL'}  {check['message']}")
        if not verdict["passed"]:
            raise typer.Exit(3)


@app.command()
def methods(as_json: bool = typer.Option(False, "--json", help="The registry as JSON (what GET /v1/methods serves)."),
            markdown: bool = typer.Option(False, "--markdown", help="The README's method table.")) -> None:
    """List pruning methods and their options with defaults (the same registry the API serves)."""
    from pruning_core.spec import DECLARED

    if as_json:
        typer.echo(json.dumps([m.describe() for m in DECLARED.values()], indent=2))
        return
    if markdown:
        typer.echo(methods_table())
        return
    for name, m in DECLARED.items():
        opts = ", ".join(f"{o.name}={o.default}" for o in m.options) or "no options"
        typer.echo(f"{name:<10} {m.summary}\n{'':<10} reads: {m.stats}; options: {opts}")


def methods_table() -> str:
    """The README's method table, generated from the registry (tests/unit/test_readme.py compares)."""
    from pruning_core.spec import DECLARED

    reads = {"none": "no data", "norms": "input norms ‖X_j‖", "gram": "H = XXᵀ"}
    rows = ["| method | what it does | reads | joint int quantization | options (default) |",
            "|---|---|---|---|---|"]
    for m in DECLARED.values():
        opts = ", ".join(f"`{o.name}`={o.default}" for o in m.options) or "none"
        rows.append(f"| `{m.name}` | {m.summary} | {reads[m.stats]} | {'yes' if m.supports_quant else 'no'} | {opts} |")
    return "\n".join(rows)


keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")


def _migrate() -> None:
    from alembic import command
    from alembic.config import Config

    from db.settings import get_settings

    root = Path(__file__).resolve().parents[1]
    cfg = Config(str(root / "alembic.ini"))
    cfg.attributes["url"] = get_settings().db_url
    command.upgrade(cfg, "head")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database (TOPIARY_DATABASE_URL or the SQLite default)."""
    _migrate()


@app.command()
def download(
    job_id: str = typer.Argument(..., help="The job whose result to fetch (pj_...)."),
    out: Path = typer.Argument(..., help="Directory to unpack into (must not exist or be empty)."),
    api_url: str = typer.Option("http://127.0.0.1:8000", envvar="TOPIARY_API_URL", help="The API's base URL."),
    key: str = typer.Option(..., envvar="TOPIARY_API_KEY", help="API key with jobs:read."),
) -> None:
    """Fetch a job's model, masks and report as one archive, verify every sha256, unpack into OUT."""
    import httpx

    from topiary.download import DownloadError
    from topiary.download import download as fetch

    try:
        with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            files = fetch(client, job_id, out)
    except (DownloadError, httpx.HTTPError) as exc:
        fail(str(exc))
    typer.echo(f"{len(files)} files, {sum(size for _, size in files)} bytes, sha256 verified: {out}")


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., help="Tenant name (created when new)."),
    scopes: str = typer.Option("jobs:read,jobs:write", help="Comma-separated: jobs:read, jobs:write, admin."),
) -> None:
    """Create an API key and print it alone on stdout (it is shown only this once)."""
    from db import keys
    from db.engine import sessionmaker_for
    from db.settings import get_settings

    _migrate()
    with sessionmaker_for(get_settings().db_url)() as s:
        try:
            _, plaintext = keys.create_key(s, tenant, [x.strip() for x in scopes.split(",") if x.strip()])
        except ValueError as exc:
            fail(str(exc))
        s.commit()
    typer.echo(plaintext)


@keys_app.command("list")
def keys_list(tenant: str | None = typer.Option(None, help="Only this tenant's keys (default: every tenant).")) -> None:
    """Every API key: id, tenant, prefix, scopes, created, revoked (never the secret)."""
    from sqlalchemy import select

    from db.engine import sessionmaker_for
    from db.models import ApiKey, Tenant
    from db.settings import get_settings

    _migrate()
    with sessionmaker_for(get_settings().db_url)() as s:
        query = select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id).order_by(ApiKey.created_at)
        if tenant is not None:
            query = query.where(Tenant.name == tenant)
        for key, name in s.execute(query):
            revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "-"
            typer.echo(f"{key.id}\t{name}\t{key.prefix}\t{','.join(key.scopes)}\t"
                       f"{key.created_at.isoformat(timespec='seconds')}\trevoked {revoked}")


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The key's id (key_...) or prefix (tpk_...).")) -> None:
    """Revoke an API key: it answers 401 from then on (running API processes within 2 s)."""
    from sqlalchemy import or_, select

    from db import keys
    from db.engine import sessionmaker_for
    from db.models import ApiKey
    from db.settings import get_settings

    _migrate()
    with sessionmaker_for(get_settings().db_url)() as s:
        record = s.scalar(select(ApiKey).where(or_(ApiKey.id == key, ApiKey.prefix == key)))
        if record is None:
            fail(f"no API key {key!r}")
        if record.revoked_at is None:
            keys.revoke(s, record)
            s.commit()
        typer.echo(f"revoked {record.id} ({record.prefix})")


@app.command()
def api(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port."),
    workers: int = typer.Option(1, help="Server processes."),
    migrate: bool = typer.Option(True, "--migrate/--no-migrate", help="Apply migrations first."),
) -> None:
    """Run the REST API alone (no worker)."""
    import uvicorn

    from db import metrics

    _announce(host, port)
    if migrate:
        _migrate()
    run = lambda: uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers,
                              log_level="warning", access_log=False)
    if workers > 1:  # /metrics then adds up every server process's samples
        with metrics.MultiprocessArea():
            run()
    else:
        run()


@app.command()
def worker(
    gpus: str | None = typer.Option(None, help="Comma-separated GPU indices: one pinned worker process per GPU."),
    device: str = typer.Option("auto", help="Without --gpus: cpu, cuda or auto."),
    loglevel: str = typer.Option("WARNING", help="Celery log level."),
) -> None:
    """Run Celery workers (and the lease reaper) for the configured broker and database; their
    Prometheus metrics are served on TOPIARY_WORKER_METRICS_PORT (9101; 0 turns them off)."""
    from worker.launch import supervise, worker_commands

    try:
        gpu_list = [int(g) for g in gpus.split(",")] if gpus else None
    except ValueError:
        fail(f"--gpus expects indices like 0,1; got {gpus!r}")
    _migrate()
    raise typer.Exit(supervise(worker_commands(gpu_list, device, loglevel)))


def _announce(host: str, port: int) -> None:
    """Where to find the service, as the first lines a `serve` or `api` prints."""
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    typer.echo(f"Topiary API  {base}/v1\nAPI docs     {base}/docs\nDashboard    {base}/dashboard/", err=True)


def _check_port_free(host: str, port: int) -> None:
    """Refuse to start when the port is taken (an older service still running): its workers
    would otherwise claim jobs for a service that cannot answer."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: closed connections don't count
            sock.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port."),
    gpus: str | None = typer.Option(None, help="Comma-separated GPU indices for the workers."),
    device: str = typer.Option("auto", help="Worker device without --gpus."),
) -> None:
    """API and worker together. With no TOPIARY_DATABASE_URL / TOPIARY_BROKER_URL this is the embedded
    setup: a SQLite file, kombu's filesystem broker and local artifacts under $TOPIARY_HOME."""
    from worker.launch import supervise, worker_commands

    try:
        gpu_list = [int(g) for g in gpus.split(",")] if gpus else None
    except ValueError:
        fail(f"--gpus expects indices like 0,1; got {gpus!r}")
    _check_port_free(host, port)
    _announce(host, port)
    _migrate()
    api_cmd = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", host, "--port", str(port),
               "--log-level", "warning"]
    ready = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/healthz"
    raise typer.Exit(supervise([(api_cmd, {})] + worker_commands(gpu_list, device), ready_url=ready))


@app.command()
def demo(
    method: str = typer.Option("alps", help="Method of the demo job."),
    sparsity: float = typer.Option(0.5, help="Target sparsity."),
    nsamples: int = typer.Option(32, help="Calibration sequences."),
    seqlen: int = typer.Option(512, help="Tokens per sequence (calibration and evaluation)."),
    eval_limit: int = typer.Option(16, help="WikiText-2 windows evaluated, dense and pruned."),
) -> None:
    """Start the service, prune the bundled model through the REST API, print the report, stop."""
    from topiary.demo import run

    raise typer.Exit(run(method, sparsity, nsamples, seqlen, eval_limit))


def main() -> None:
    """Entry point: click usage errors become one line and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("topiary: aborted", err=True)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad values, unknown options
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.echo(f"topiary: error: {message}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
