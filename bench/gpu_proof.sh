#!/usr/bin/env bash
# The GPU proof in one command, on a GPU machine that lacks some packages (see ../shared/device.md):
#   bash bench/gpu_proof.sh [BUDGET_SECONDS] [PARTS...]
# Installs the carried wheels (.whl, made by bench/gpu_wheels.sh) when there are any, prints the versions, then runs
# bench/gpu_proof.py with a wall-clock budget (default 330 s). Figures and logs land in $OUT
# (or bench/results/gpu_proof when OUT is unset): gpu_proof.json, logs.tgz, pip.txt.
set -u
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-bench/results/gpu_proof}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD:$PWD/sdk/python
fi
$PY -m pip list 2>/dev/null > "$OUT/pip.txt"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
$PY -c "import torch, transformers, trl, peft, datasets, grpc, google.protobuf as pb; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'datasets', datasets.__version__, 'grpc', grpc.__version__, 'protobuf', pb.__version__)" || exit 1
BUDGET=${1:-330}
shift || true
$PY bench/gpu_proof.py --out "$OUT" --budget "$BUDGET" ${1:+--only "$@"}
rc=$?
$PY - "$OUT/gpu_proof.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\n{r.get('device')} {r.get('versions')}")
print(f"{'run':24s} {'a bare':>9s} {'b ftlab':>9s} {'c same':>9s} {'b/a':>6s} {'b/c':>6s} {'MFU b':>6s} {'peak b':>7s} {'loss a/b/c':>22s}")
for s in r["speed"]:
    a, b, c = s["bare_trl"], s["ftlab"], s["bare_trl_same_settings"]
    mfu = f"{b['mfu']:.1%}" if b.get("mfu") else "-"
    peak = f"{(b.get('peak_memory_bytes') or 0) / 2**30:.1f}G"
    loss = "/".join(f"{x['final_loss']:.3f}" for x in (a, b, c))
    print(f"{s['shape'] + ' ' + s['adapter']:24s} {a['tokens_per_second']:9,.0f} {b['tokens_per_second']:9,.0f} "
          f"{c['tokens_per_second']:9,.0f} {s['b_over_a']:5.2f}x {s['b_over_c']:5.3f}x {mfu:>6s} {peak:>7s} {loss:>22s}")
for k, v in r["failures"].items():
    print(k, json.dumps(v)[:600])
print("zygote", r.get("zygote"), "skipped", r.get("skipped"), "timings", r.get("timings"))
for e in r["errors"]:
    print("ERROR", e["part"], e["error"][-800:])
PYEOF
exit $rc
