"""Fixtures: a tiny model, datasets, real servers, and a PostgreSQL schema of our own."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import start_server, write_chat_dataset  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
UPLOAD_LIMIT = 4 << 20  # the embedded test server's dataset upload limit


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from services.trainer.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny-qwen2")


@pytest.fixture(scope="session")
def server_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("ftlab-home")
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=128)
    return home


@pytest.fixture(scope="session")
def server(server_home, tiny_model):
    """One embedded server (all four services) shared by the end-to-end tests."""
    s = start_server(server_home, name="embedded", env={"FTLAB_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
                                                         "FTLAB_PREFLIGHT_TEMPLATE_SECONDS": "3"})
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture
def job_config(tiny_model):
    """A LoRA SFT config on the tiny model that trains for real in a few seconds."""
    return {
        "base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl", "eval_split": 0.1},
        "max_steps": 30, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
        "learning_rate": 5e-3, "max_seq_length": 128, "save_steps": 10, "eval_strategy": "steps",
        "eval_steps": 10, "logging_steps": 1,
    }


def _pg_engine_or_skip():
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return engine
    except Exception as exc:  # no server here: say so instead of failing
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__}); run with a server to test it")


@pytest.fixture
def pg_schema():
    """A fresh schema in the `test` database, dropped afterwards: (url, schema)."""
    from sqlalchemy import text

    engine = _pg_engine_or_skip()
    schema = f"ftlab_test_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    try:
        yield PG_URL, schema
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"drop schema {schema} cascade"))
        engine.dispose()
