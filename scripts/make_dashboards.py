"""Write FineTune Lab's Grafana dashboards (deploy/grafana/dashboards/*.json) from the panels below.

    python scripts/make_dashboards.py [--check]

The panels' PromQL is the contract with the services' metrics: tests/e2e/test_prometheus.py runs a
real Prometheus against real services and evaluates every expression here. `--check` fails when the
committed JSON differs from what this script writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "ftlab-prometheus"}

# (title, unit, [(expr, legend)], gpu_only)
FLEET = [
    ("Queue depth", "short", [("ftlab_queue_depth", "queued")], False),
    ("Jobs by state", "short", [("sum by (state) (ftlab_jobs)", "{{state}}")], False),
    ("Running jobs", "short", [('ftlab_jobs{state="running"}', "running")], False),
    ("Queue wait (p50, p95)", "s", [
        ("histogram_quantile(0.5, sum by (le) (rate(ftlab_queue_wait_seconds_bucket[5m])))", "p50"),
        ("histogram_quantile(0.95, sum by (le) (rate(ftlab_queue_wait_seconds_bucket[5m])))", "p95")], False),
    ("Submit to first step (p50)", "s", [
        ("histogram_quantile(0.5, sum by (le) (rate(ftlab_job_first_step_seconds_bucket[5m])))", "p50")], False),
    ("Failures by category (1h)", "short", [
        ("sum by (category) (increase(ftlab_job_failures_total[1h]))", "{{category}}")], False),
    ("Jobs ended by state (1h)", "short", [("sum by (state) (increase(ftlab_jobs_ended_total[1h]))", "{{state}}")],
     False),
    ("Stuck-job timeouts (1h)", "short", [("sum by (phase) (increase(ftlab_stuck_job_timeouts_total[1h]))", "{{phase}}")],
     False),
    ("Training tokens/s (all running jobs)", "short", [("sum(ftlab_job_tokens_per_second)", "tokens/s")], False),
    ("Checkpoint save time (p95)", "s", [
        ("histogram_quantile(0.95, sum by (le) (rate(ftlab_checkpoint_save_seconds_bucket[5m])))", "p95")], False),
    ("gRPC calls by code", "reqps", [
        ("sum by (grpc_service, grpc_code) (rate(ftlab_grpc_server_handled_total[1m]))", "{{grpc_service}} {{grpc_code}}")],
     False),
    ("gRPC latency p95 by method", "s", [
        ("histogram_quantile(0.95, sum by (le, grpc_method) (rate(ftlab_grpc_server_handling_seconds_bucket[5m])))",
         "{{grpc_method}}")], False),
    ("Artifact bytes streamed", "Bps", [("rate(ftlab_artifact_streamed_bytes_total[1m])", "download")], False),
    ("GPU memory used", "bytes", [("ftlab_gpu_memory_used_bytes", "GPU {{gpu}} {{instance}}"),
                                  ("ftlab_gpu_memory_total_bytes", "GPU {{gpu}} total")], True),
    ("GPU utilization", "percentunit", [("ftlab_gpu_utilization_ratio", "GPU {{gpu}} {{instance}}")], True),
]

JOB = [
    ("Loss", "short", [('ftlab_job_loss{job_id=~"$job"}', "loss"), ('ftlab_job_eval_loss{job_id=~"$job"}', "eval loss")],
     False),
    ("Tokens/s", "short", [('ftlab_job_tokens_per_second{job_id=~"$job"}', "tokens/s")], False),
    ("Samples/s", "short", [('ftlab_job_samples_per_second{job_id=~"$job"}', "samples/s")], False),
    ("Step", "short", [('ftlab_job_step{job_id=~"$job"}', "step")], False),
    ("Token accuracy and entropy", "short", [('ftlab_job_token_accuracy{job_id=~"$job"}', "token accuracy"),
                                             ('ftlab_job_entropy{job_id=~"$job"}', "entropy (nats)")], False),
    ("DPO rewards", "short", [('ftlab_job_dpo_reward_chosen{job_id=~"$job"}', "chosen"),
                              ('ftlab_job_dpo_reward_rejected{job_id=~"$job"}', "rejected"),
                              ('ftlab_job_dpo_reward_margin{job_id=~"$job"}', "margin"),
                              ('ftlab_job_dpo_reward_accuracy{job_id=~"$job"}', "accuracy")], False),
    ("GPU memory (peak)", "bytes", [('ftlab_job_gpu_memory_peak_bytes{job_id=~"$job"}', "peak"),
                                    ('ftlab_run_gpu_memory_bytes{job_id=~"$job"}', "{{kind}}")], True),
]


def panel(i: int, title: str, unit: str, targets, gpu_only: bool) -> dict:
    return {
        "id": i + 1, "type": "timeseries", "title": title, "datasource": DATASOURCE,
        "description": "Needs a GPU trainer (NVML/CUDA)." if gpu_only else "",
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        # a job's series say which job they are: the job board shows several at once
        "targets": [{"refId": chr(65 + j), "datasource": DATASOURCE, "expr": expr,
                     "legendFormat": f"{{{{job_id}}}} {legend}" if "$job" in expr else legend}
                    for j, (expr, legend) in enumerate(targets)],
    }


def dashboard(uid: str, title: str, panels, variables=()) -> dict:
    return {
        "uid": uid, "title": title, "tags": ["ftlab"], "timezone": "utc", "schemaVersion": 39, "version": 1,
        "refresh": "10s", "time": {"from": "now-1h", "to": "now"}, "editable": True,
        "templating": {"list": list(variables)},
        "panels": [panel(i, *p) for i, p in enumerate(panels)],
    }


# several jobs at once: each series is labelled by its job
JOB_VARIABLE = {
    "name": "job", "label": "Job", "type": "query", "datasource": DATASOURCE, "refresh": 2, "multi": True,
    "includeAll": False,
    "query": {"query": "label_values(ftlab_job_step, job_id)", "refId": "jobs"},
    "definition": "label_values(ftlab_job_step, job_id)", "sort": 1,
}


def render() -> dict[str, str]:
    boards = {"ftlab-fleet.json": dashboard("ftlab-fleet", "FineTune Lab / Fleet", FLEET),
              "ftlab-job.json": dashboard("ftlab-job", "FineTune Lab / Job", JOB, [JOB_VARIABLE])}
    return {name: json.dumps(board, indent=2) + "\n" for name, board in boards.items()}


def expressions() -> list[tuple[str, str, bool]]:
    """(dashboard, expr, gpu_only) of every panel target."""
    return [(board, expr, gpu) for board, panels in (("fleet", FLEET), ("job", JOB))
            for _, _, targets, gpu in panels for expr, _ in targets]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale dashboards: {', '.join(stale)}; run python scripts/make_dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
