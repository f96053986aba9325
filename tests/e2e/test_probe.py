"""The containers' health probe (`python -m services.common.probe`) against a real server."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT, free_port


def probe(*args):
    return subprocess.run([sys.executable, "-m", "services.common.probe", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)


def test_probe_says_serving_or_not(server):
    ok = probe(server.address)
    assert ok.returncode == 0 and "SERVING" in ok.stdout
    assert probe(server.address, "ftlab.v1.ArtifactService").returncode == 0
    assert probe(server.address, "ftlab.v1.NoSuchService").returncode == 1
    assert probe(f"127.0.0.1:{free_port()}").returncode == 1
