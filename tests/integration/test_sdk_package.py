"""The Python SDK is a package of its own: it builds, installs into a clean virtual environment
without torch or the services, imports, and talks to nothing but gRPC."""

from __future__ import annotations

import shutil
import subprocess
import venv

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def test_sdk_installs_alone_and_imports_without_torch(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    source = tmp_path / "sdk"  # a copy: building in place would leave build/ in the repository
    shutil.copytree(ROOT / "sdk" / "python", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = ("import sys, ftlab, ftlab.download\n"
             "from ftlab import Client\n"
             "from ftlab.v1 import job_service_pb2\n"
             "assert 'torch' not in sys.modules and 'services' not in sys.modules\n"
             "import importlib.util as u\n"
             "print(u.find_spec('torch') is None, ftlab.__file__)")
    run = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    no_torch, location = run.stdout.split()
    assert no_torch == "True" and str(env_dir) in location  # its own copy, not this repository's
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.lower()
    assert "ftlab-sdk" in freeze and "torch" not in freeze and "transformers" not in freeze
