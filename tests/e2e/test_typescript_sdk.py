"""The TypeScript SDK: generated from the same protos (and fresh), and a Node client that submits a
job to the real server and watches it to the end (sdk/typescript/test/submit.test.js)."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess

import pytest

from tests.helpers import ROOT

SDK = ROOT / "sdk" / "typescript"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")]


@pytest.fixture(scope="module")
def node_modules():
    if not (SDK / "node_modules" / ".installed").exists():  # `make tools` does this; a bare pytest run too
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=SDK, check=True, timeout=600)
        (SDK / "node_modules" / ".installed").touch()
    return SDK / "node_modules"


def test_generated_typescript_is_fresh(node_modules, tmp_path):
    env = dict(os.environ, PATH=f"{node_modules / '.bin'}:{os.environ['PATH']}")
    template = tmp_path / "buf.gen.yaml"
    template.write_text((SDK / "buf.gen.yaml").read_text().replace("out: gen", f"out: {tmp_path / 'gen'}"))
    buf = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        pytest.skip("buf is not installed (make tools installs it from npm)")
    subprocess.run([str(buf), "generate", str(ROOT / "protos"), "--template", str(template)], cwd=SDK, env=env,
                   check=True, timeout=120)
    fresh = sorted(p.relative_to(tmp_path / "gen") for p in (tmp_path / "gen").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(SDK / "gen") for p in (SDK / "gen").rglob("*") if p.is_file())
    assert fresh == committed
    stale = [str(p) for p in fresh if not filecmp.cmp(tmp_path / "gen" / p, SDK / "gen" / p, shallow=False)]
    assert not stale, f"run `make proto`: {stale}"


def test_a_node_client_submits_a_job_and_watches_it_to_the_end(node_modules, server, tiny_model):
    env = dict(os.environ, FTLAB_ADDRESS=server.address, FTLAB_TEST_MODEL=str(tiny_model),
               FTLAB_TEST_DATASET="chat.jsonl")
    env.pop("FTLAB_TOKEN", None)
    done = subprocess.run(["node", "--test", "test/"], cwd=SDK, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# pass 3" in done.stdout and "# fail 0" in done.stdout
