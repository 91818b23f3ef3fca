"""API test client over a real database: the same suite runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import secrets

import pytest

from service_fixtures import alembic, postgres_database


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
def db_url(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'api.db'}"
        alembic(url, "upgrade", "head")
        yield url
    else:
        with postgres_database() as url:
            alembic(url, "upgrade", "head")
            yield url
            from db.engine import sessionmaker_for

            sessionmaker_for(url).kw["bind"].dispose()  # let DROP DATABASE proceed


@pytest.fixture
def settings(db_url, tmp_path):
    from db.settings import Settings

    (tmp_path / "models").mkdir()
    return Settings(home=tmp_path, database_url=db_url, artifacts_dir=tmp_path / "artifacts",
                    allowed_model_roots=[tmp_path / "models"], enqueue=False, max_body_bytes=64_000,
                    max_dataset_bytes=10_000)


@pytest.fixture
def client(settings):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def tenant(db_url) -> str:
    """A fresh tenant's id, for tests that write job rows through the repository."""
    from db import keys
    from db.engine import sessionmaker_for

    with sessionmaker_for(db_url)() as s:
        tenant = keys.create_key(s, f"t-{secrets.token_hex(4)}", ["jobs:read"])[0].tenant_id
        s.commit()
    return tenant


@pytest.fixture
def make_key(db_url):
    """make_key(scopes, tenant=None) -> Authorization headers for a fresh key (fresh tenant by default)."""
    from db import keys
    from db.engine import sessionmaker_for

    def make(scopes=("jobs:read", "jobs:write"), tenant=None):
        with sessionmaker_for(db_url)() as s:
            _, plaintext = keys.create_key(s, tenant or f"t-{secrets.token_hex(4)}", list(scopes))
            s.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    return make


@pytest.fixture(scope="module")
def model_root(tmp_path_factory, smol_dir):
    """Two tiny LLaMA directories under an allowed root: 2 blocks (fast) and 6 blocks (slow)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("models")
    tok = AutoTokenizer.from_pretrained(smol_dir)
    for name, layers in (("tiny", 2), ("deeper", 6)):
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
        LlamaForCausalLM(cfg).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    return root


@pytest.fixture(scope="module")
def pg_url():
    """A fresh migrated PostgreSQL database per test module (for the service as deployed)."""
    with postgres_database() as url:
        alembic(url, "upgrade", "head")
        yield url


@pytest.fixture
def service(tmp_path, pg_url, model_root):
    """The real service (uvicorn + `topiary worker` on demand) over the module's database and the
    shared Redis, with the tiny and the deeper model registered."""
    from service_fixtures import Service

    svc = Service(tmp_path, pg_url, "redis://127.0.0.1:6379/14", model_root)
    svc.register("tiny", path=str(model_root / "tiny"))
    svc.register("deeper", path=str(model_root / "deeper"))
    yield svc
    svc.close()
