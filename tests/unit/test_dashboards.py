"""The committed Grafana dashboards are what scripts/make_dashboards.py writes, and are well formed."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT


def test_dashboards_are_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_dashboards.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_dashboards_use_the_provisioned_datasource_and_a_job_variable():
    boards = {p.name: json.loads(p.read_text()) for p in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")}
    assert set(boards) == {"ftlab-fleet.json", "ftlab-job.json"}
    provisioned = (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    for board in boards.values():
        assert board["panels"] and all(t["datasource"]["uid"] == "ftlab-prometheus"
                                       for p in board["panels"] for t in p["targets"])
    assert "uid: ftlab-prometheus" in provisioned
    assert [v["name"] for v in boards["ftlab-job.json"]["templating"]["list"]] == ["job"]
    # several jobs at once, each series named by its job
    (variable,) = boards["ftlab-job.json"]["templating"]["list"]
    assert variable["multi"] is True
    targets = [t for p in boards["ftlab-job.json"]["panels"] for t in p["targets"]]
    assert all('job_id=~"$job"' in t["expr"] and t["legendFormat"].startswith("{{job_id}} ") for t in targets)
