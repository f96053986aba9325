"""`buf curl` through server reflection: lists every service and method, and calls them with JSON."""

from __future__ import annotations

import json
import subprocess

import pytest

from ftlab.v1 import analyzer_pb2, artifact_service_pb2, job_service_pb2
from tests.helpers import ROOT

pytestmark = pytest.mark.slow
BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"


def buf_curl(server, *args, user="curl"):
    if not BUF.exists():
        pytest.skip("buf is not installed (make tools installs it from npm)")
    return subprocess.run([str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                           "-H", f"x-ftlab-user: {user}", *args], capture_output=True, text=True, timeout=60)


def test_reflection_lists_every_method(server):
    listed = buf_curl(server, "--list-methods", f"http://{server.address}")
    assert listed.returncode == 0, listed.stderr
    methods = set(listed.stdout.split())
    expected = {f"{s.full_name}/{m.name}" for f in (job_service_pb2, artifact_service_pb2, analyzer_pb2)
                for s in f.DESCRIPTOR.services_by_name.values() for m in s.methods}
    assert expected <= methods, expected - methods
    assert "grpc.health.v1.Health/Check" in methods


def test_calls_with_json_and_status_codes(server):
    templates = buf_curl(server, "-d", "{}", f"http://{server.address}/ftlab.v1.JobService/ListTemplates")
    assert templates.returncode == 0, templates.stderr
    assert "basic" in {t["name"] for t in json.loads(templates.stdout)["templates"]}
    missing = buf_curl(server, "-d", '{"name": "jobs/0000000000000000"}',
                       f"http://{server.address}/ftlab.v1.JobService/GetJob")
    assert missing.returncode != 0 and "not_found" in (missing.stderr + missing.stdout).lower()
    bad = buf_curl(server, "-d", '{"config": {"learning_rate": -1}}',
                   f"http://{server.address}/ftlab.v1.JobService/CreateJob")
    assert bad.returncode != 0 and "invalid_argument" in (bad.stderr + bad.stdout).lower()
