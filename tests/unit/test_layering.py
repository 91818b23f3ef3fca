"""Layering: pruning_core stays a plain library (no web, queue or ORM imports), its job spec
imports neither torch nor any service package, and the API loads no torch and nothing of
pruning_core beyond the spec (and the torch-free rule for published file modes). Each check imports in a fresh interpreter."""

import subprocess
import sys


def loaded_after(statements: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of `candidates` are in sys.modules after running `statements` in a new interpreter."""
    code = f"import sys; {statements}; print(','.join(m for m in {candidates!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [m for m in proc.stdout.strip().split(",") if m]


def test_pruning_core_does_not_load_service_packages():
    assert loaded_after("import pruning_core, pruning_core.pipeline, pruning_core.driver",
                        ("fastapi", "celery", "sqlalchemy", "starlette")) == []


def test_cli_help_does_not_load_torch():
    assert loaded_after("from topiary import cli", ("torch",)) == []


def test_job_spec_loads_neither_torch_nor_service_packages():
    assert loaded_after("import pruning_core.spec; from pruning_core.spec import JobSpec; "
                        "JobSpec.from_dict({'model': 'm', 'method': 'alps'})",
                        ("torch", "numpy", "transformers", "fastapi", "celery", "sqlalchemy", "pydantic")) == []


def test_api_does_not_load_torch_or_pruning_core_beyond_the_spec():
    code = ("from api.app import create_app; create_app(); import db.broker, db.jobs, worker.celery_app; "
            "spec_only = all(m == 'pruning_core' or m.startswith('pruning_core.spec') "
            "or m in ('pruning_core.errors', 'pruning_core.files') "
            "for m in sys.modules if m.startswith('pruning_core'))")
    assert loaded_after(code, ("torch", "transformers")) == []
    assert loaded_after(code + "; assert spec_only, sorted(m for m in sys.modules if m.startswith('pruning_core'))",
                        ()) == []
