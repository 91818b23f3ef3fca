"""Layering: pruning_core stays a plain library (no web, queue or ORM imports) and the API never
loads torch or pruning_core. Each check imports in a fresh interpreter."""

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


def test_api_does_not_load_torch_or_pruning_core():
    assert loaded_after("from api.app import create_app; create_app(); import db.broker, db.jobs, worker.celery_app",
                        ("torch", "pruning_core", "transformers")) == []
