"""The domain's modules import neither gRPC nor SQLAlchemy: read from their own import statements,
so a new import of either fails here. Servicers, interceptors, channels and the store are where those
libraries belong."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = [
    "services/scheduler/jobs.py", "services/scheduler/run_events.py", "services/scheduler/transitions.py",
    "services/scheduler/queue_estimate.py", "services/scheduler/clock.py", "services/scheduler/states.py",
    "services/scheduler/jobconfig.py", "services/scheduler/resume_changes.py", "services/scheduler/retries.py", "services/scheduler/rows.py",
    "services/scheduler/queries.py", "services/scheduler/templates.py",
    "services/analyzer/analyze.py", "services/analyzer/rules.py", "services/analyzer/phases.py",
    "services/analyzer/priors.py", "services/analyzer/suggestions.py", "services/analyzer/logparse.py",
    "services/analyzer/library.py", "services/analyzer/memory.py",
    "services/common/datasets.py", "services/common/columns.py", "services/common/checkpoints.py",
    "services/common/chat_templates.py", "services/common/errors.py",
]
FORBIDDEN = ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "sqlalchemy")


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_code_imports_neither_grpc_nor_sqlalchemy(module):
    bad = sorted(m for m in imported(ROOT / module) if m.split(".")[0] in FORBIDDEN)
    assert not bad, f"{module} imports {bad}"


def test_the_run_event_reducer_never_sees_a_session():
    """run_events.py reaches checkpoints and attempts only through the unit of work."""
    mods = imported(ROOT / "services/scheduler/run_events.py")
    assert not any(m.startswith("services.scheduler.store") for m in mods), mods
