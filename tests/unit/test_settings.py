"""Each service's settings are built in one place from its flags, whose defaults are the FTLAB_*
variables; the flags win."""

from __future__ import annotations

import dataclasses

import pytest

from services import runner, serve_settings
from services.common import settings


def _settings(argv: list[str]) -> serve_settings.Settings:
    return serve_settings.from_args(runner.parser_for(list(runner.COMPONENTS)).parse_args(argv))


def test_the_environment_gives_the_defaults_and_the_flags_win(monkeypatch, tmp_path):
    monkeypatch.setenv("FTLAB_HOME", str(tmp_path))
    monkeypatch.setenv("FTLAB_SCHEDULER_ADDRESS", "sched:50051")
    monkeypatch.setenv("FTLAB_MAX_RUNNING_PER_USER", "3")
    monkeypatch.setenv("FTLAB_LOG_LEVEL", "DEBUG")
    monkeypatch.delenv("FTLAB_DATABASE_URL", raising=False)
    s = _settings(["--port", "0", "--max-runs", "2", "--no-preload"])
    assert (s.server.port, s.trainer.max_runs, s.trainer.preload) == (0, 2, False)
    assert (s.trainer.scheduler, s.artifacts.scheduler, s.scheduler.max_running_per_user) == ("sched:50051",) * 2 + (3,)
    assert s.scheduler.database_url == f"sqlite:///{tmp_path.resolve() / 'ftlab.db'}" and s.log_level == "DEBUG"
    s = _settings(["--scheduler", "other:1", "--max-running-per-user", "0"])
    assert (s.trainer.scheduler, s.scheduler.max_running_per_user) == ("other:1", 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.server.port = 1  # type: ignore[misc]


def test_tls_and_tokens_are_read_in_one_place(monkeypatch):
    for name in ("FTLAB_TLS_CERT", "FTLAB_TLS_KEY", "FTLAB_TLS_CLIENT_CA", "FTLAB_TLS_CA", "FTLAB_TLS_CLIENT_CERT",
                 "FTLAB_TLS_CLIENT_KEY", "FTLAB_TOKENS_FILE", "FTLAB_TOKENS", "FTLAB_SERVICE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert settings.tls() == settings.Tls(None, None, None, None, None, None)
    monkeypatch.setenv("FTLAB_TLS_CERT", "c.pem")
    monkeypatch.setenv("FTLAB_TOKENS", "ann:user:t1")
    assert settings.tls().cert == "c.pem" and settings.tokens() == settings.Tokens(None, "ann:user:t1", None)
