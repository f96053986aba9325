"""A real Prometheus (Debian's package, installed here when missing) scrapes real services while a
real job trains and another fails; every PromQL expression of the Grafana dashboards is then
evaluated through Prometheus's HTTP API over that time and must return data. GPU panels need a GPU
trainer: without one they must still be valid queries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from ftlab import Client
from ftlab.v1 import job_pb2
from tests.helpers import ROOT, free_port, start_server, wait_for, write_chat_dataset

pytestmark = pytest.mark.slow
sys.path.insert(0, str(ROOT / "scripts"))
from make_dashboards import expressions  # noqa: E402


def prometheus_binary() -> str:
    """Debian's prometheus, installed by the test set-up when the machine lacks it."""
    found = shutil.which("prometheus")
    if found:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
    if os.geteuid() != 0:
        install = ["sudo", "-n", *install]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # stale package lists: refresh once
        subprocess.run(install[:-5] + ["update", "-q"], env=env, capture_output=True, timeout=900)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"could not install Debian's prometheus: {done.stderr[-2000:]}"
    subprocess.run(["pkill", "-x", "prometheus"], capture_output=True)  # the package's own service, if it started one
    return shutil.which("prometheus") or "/usr/bin/prometheus"


def api(base: str, path: str, **params) -> dict:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_model):
    binary = prometheus_binary()
    home = tmp_path_factory.mktemp("prom-home")
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=96)
    (home / "datasets" / "pairs.jsonl").write_text("".join(  # the watched job is DPO: every per-job panel has data
        json.dumps({"prompt": f"What is {a} plus 1?", "chosen": f"{a + 1}.", "rejected": f"{a + 7}."}) + "\n"
        for a in range(64)))
    server = start_server(home, name="prom")
    port = free_port()
    config = home / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
                      f"scrape_configs:\n  - job_name: ftlab\n    static_configs: [{{targets: ['127.0.0.1:{server.metrics_port}']}}]\n")
    prom = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={home / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=open(home / "prometheus.log", "wb"))
    base = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(ready, timeout=60, what="prometheus ready")
        # one scrape before any job: a histogram's rate needs the sample from before its first observation
        wait_for(lambda: api(base, "query", query="ftlab_job_first_step_seconds_count")["result"], timeout=60,
                 what="prometheus's first scrape")
        start = time.time()
        job_id = _run_jobs(server, tiny_model, home, base)
        # a scrape after the last job ended, so each range below holds that job's whole life
        wait_for(lambda: [r for r in api(base, "query", query='ftlab_jobs_ended_total{state="cancelled"}')["result"]
                          if float(r["value"][1]) >= 1], timeout=60, what="a scrape after the cancel")
        yield base, start, job_id
    finally:
        prom.terminate()
        prom.wait(30)
        assert server.stop() == 0, server.log()


def _run_jobs(server, tiny_model, home, base) -> str:
    """A job that trains, evaluates and is downloaded, one that fails (and is analyzed), and one that
    trains (DPO, so that the reward panels have data too) until Prometheus has scraped each of its
    per-job series (they exist only while it runs; a short job on fast cores can end between two
    scrapes), then is cancelled; its id is returned."""
    per_job = [e for board, e, gpu_only in expressions() if board == "job" and not gpu_only]
    with Client(server.address, user="prom") as client:
        good = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl", "eval_split": 0.1},
                                  "max_steps": 20, "save_steps": 10, "eval_strategy": "steps", "eval_steps": 10,
                                  "max_seq_length": 64, "per_device_train_batch_size": 2})
        bad = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "missing.jsonl"}}, force=True)
        assert client.wait(good.name, timeout=300).state == job_pb2.JOB_STATE_SUCCEEDED
        assert client.wait(bad.name, timeout=300).state == job_pb2.JOB_STATE_FAILED
        wait_for(lambda: client.get_job(bad.name).analysis.category, timeout=60, what="the failure analysis")
        client.download(good.name, home / "adapter.zip", what="adapter")
        watched = client.create_job({"base_model": str(tiny_model), "max_steps": 5000, "save_steps": 0, "method": "dpo",
                                     "dataset": {"uri": "pairs.jsonl", "eval_split": 0.1}, "eval_strategy": "steps",
                                     "eval_steps": 5, "max_seq_length": 64, "per_device_train_batch_size": 2})
        job_id = watched.name.removeprefix("jobs/")
        for expr in per_job:
            wait_for(lambda: api(base, "query", query=expr.replace("$job", job_id))["result"], timeout=240,
                     what=f"a scrape of {expr}")
        client.cancel_job(watched.name)
        assert client.wait(watched.name, timeout=120).state == job_pb2.JOB_STATE_CANCELLED
    return job_id


def test_prometheus_scrapes_the_services(stack):
    base, _, _ = stack
    targets = api(base, "targets")["activeTargets"]
    assert targets and all(t["health"] == "up" for t in targets), targets


@pytest.mark.parametrize("board,expr,gpu_only", expressions(), ids=[e for _, e, _ in expressions()])
def test_every_dashboard_expression_returns_data(stack, board, expr, gpu_only):
    base, start, job_id = stack
    query = expr.replace("$job", job_id)
    data = api(base, "query_range", query=query, start=f"{start:.3f}", end=f"{time.time():.3f}", step="1")
    has_gpu = bool(api(base, "query", query="ftlab_gpu_memory_total_bytes")["result"])
    if gpu_only and not has_gpu:
        pytest.skip("a GPU panel: this machine's trainer has no GPU (the query itself is valid)")
    assert data["result"], f"{board}: no data for {query}"
    values = [float(v) for series in data["result"] for _, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
    assert values, f"{board}: only NaN for {query}"
