"""pruning_core must stay usable as a plain library: no web, queue or ORM imports."""

import subprocess
import sys


def test_pruning_core_does_not_load_service_packages():
    code = (
        "import sys, pruning_core, pruning_core.pipeline, pruning_core.driver;"
        "bad=[m for m in ('fastapi','celery','sqlalchemy','starlette') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_help_does_not_load_torch():
    code = "import sys; from topiary import cli; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr


def test_api_does_not_load_torch_or_pruning_core():
    code = (
        "import sys; from api.app import create_app; create_app(); import db.broker, db.jobs;"
        "bad=[m for m in ('torch','pruning_core','transformers') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
