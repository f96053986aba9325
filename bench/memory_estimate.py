"""Compare pre-flight's GPU memory estimate with peaks measured on a real GPU.

    python bench/memory_estimate.py [bench/results/gpu_memory_calibration.json ...]

Reads what bench/gpu_memory.py measured (peak reserved by PyTorch per config), estimates each config
with services/analyzer/memory.py, prints a table and the mean and worst absolute error, and writes
bench/results/memory_estimate.json. Runs anywhere: it needs no GPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "sdk" / "python")]

from ftlab.config import config_from_dict  # noqa: E402
from services.analyzer import memory  # noqa: E402
from services.scheduler import jobconfig  # noqa: E402
from services.trainer.tiny import SHAPES  # noqa: E402


def compare(measured: dict) -> list[dict]:
    rows = []
    for run in measured["runs"]:
        if run.get("exit_code") != 0 or not run.get("peak_reserved_bytes"):
            continue
        shape = memory.shape_from_config(SHAPES[run["shape"]])
        config = jobconfig.resolve("basic", config_from_dict(dict(run["request"], base_model="m",
                                                                  dataset={"uri": "d.jsonl"})))
        est = memory.estimate(shape, config)
        real = run["peak_reserved_bytes"]
        rows.append({"name": run["name"], "measured_gib": round(real / memory.GIB, 2),
                     "estimated_gib": round(est.total_bytes / memory.GIB, 2),
                     "error": round((est.total_bytes - real) / real, 3), "set": run.get("set", "calibration")})
    return rows


def main(argv: list[str]) -> int:
    files = argv or [str(p) for p in sorted((REPO / "bench" / "results").glob("gpu_memory_*.json"))]
    rows = []
    for f in files:
        rows += compare(json.loads(Path(f).read_text()))
    print(f"{'config':28s} {'set':12s} {'measured':>9s} {'estimate':>9s} {'error':>7s}")
    for r in rows:
        print(f"{r['name']:28s} {r['set']:12s} {r['measured_gib']:8.2f}G {r['estimated_gib']:8.2f}G {r['error']:+7.1%}")
    summary = {}
    for group in sorted({r["set"] for r in rows}):
        errs = [abs(r["error"]) for r in rows if r["set"] == group]
        summary[group] = {"configs": len(errs), "mean_abs_error": round(sum(errs) / len(errs), 3),
                          "max_abs_error": round(max(errs), 3)}
        print(f"{group}: {len(errs)} configs, mean |error| {summary[group]['mean_abs_error']:.1%}, "
              f"worst {summary[group]['max_abs_error']:.1%}")
    out = REPO / "bench" / "results" / "memory_estimate.json"
    out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
