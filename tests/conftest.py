"""Fixtures: a tiny model, datasets, real servers, and a PostgreSQL schema of our own."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.helpers import CANARY, SERVICE_TOKEN, TOKENS, start_server, write_chat_dataset

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


class Secured(tuple):
    """The server with auth on, alice's finished job (trained on her upload), that upload, the data
    root bob may read, and alice's file: unpacks as (server, job)."""

    def __new__(cls, server, job, upload, bob_root, secret):
        self = super().__new__(cls, (server, job))
        self.server, self.job, self.upload, self.bob_root, self.secret = server, job, upload, bob_root, secret
        return self


@pytest.fixture(scope="session")
def secured(tmp_path_factory, tiny_model):
    """One server with auth on (alice, bob, an admin), shared by the auth tests and the cross-user walk."""
    import json

    from ftlab import Client
    from ftlab.v1 import job_pb2

    home = tmp_path_factory.mktemp("auth-home")
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    bob_root = tmp_path_factory.mktemp("bob-data")  # a data root bob may read (he plants links in it)
    tokens = home / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"user": u, "role": r, "token": t} for u, (r, t) in TOKENS.items()]}))
    server = start_server(home, name="auth", env={"FTLAB_TOKENS_FILE": str(tokens), "FTLAB_SERVICE_TOKEN": SERVICE_TOKEN,
                                                  "FTLAB_MODEL_ROOTS": str(tiny_model.parent),
                                                  "FTLAB_DATA_ROOTS": str(bob_root)})
    try:
        secret = tmp_path_factory.mktemp("alice") / "secret.jsonl"
        secret.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{CANARY} {i}"},
                                                           {"role": "assistant", "content": CANARY}]}) + "\n"
                                  for i in range(16)))
        with Client(server.address, token="tok-alice") as alice:
            upload = alice.upload_dataset(secret)
            job = alice.create_job({"base_model": str(tiny_model), "dataset": {"uri": upload.name}, "max_steps": 6,
                                    "save_steps": 3, "max_seq_length": 64, "eval_strategy": "no"})
            done = alice.wait(job.name, timeout=240)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.state_reason
        yield Secured(server, done, upload, bob_root, secret)
    finally:
        assert server.stop() == 0, server.log()


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
