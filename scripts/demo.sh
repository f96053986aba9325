#!/usr/bin/env bash
# The demo: start the embedded server, make a tiny model and a dataset, submit a LoRA SFT job,
# watch it live to the end, list its checkpoints, download the adapter, and stop the server cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
export FTLAB_HOME="${FTLAB_HOME:-$PWD/.demo}"
FTLAB=.venv/bin/ftlab
PORT="${FTLAB_DEMO_PORT:-50051}"
export FTLAB_ADDRESS="127.0.0.1:$PORT"
mkdir -p "$FTLAB_HOME"
rm -f "$FTLAB_HOME/ready.json"
started=$(date +%s)

"$FTLAB" serve --port "$PORT" --metrics-port 0 --openai-port 0 --ready-file "$FTLAB_HOME/ready.json" > "$FTLAB_HOME/server.log" 2>&1 &
server=$!
stop_server() {
  if kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    wait "$server" || true
  fi
}
trap stop_server EXIT
for _ in $(seq 1 120); do
  [ -f "$FTLAB_HOME/ready.json" ] && break
  kill -0 "$server" 2>/dev/null || { echo "server failed to start:"; cat "$FTLAB_HOME/server.log"; exit 1; }
  sleep 0.25
done
echo "== server up on $FTLAB_ADDRESS (log: $FTLAB_HOME/server.log)"

echo "== making a tiny Qwen2 model and a chat dataset"
[ -f "$FTLAB_HOME/tiny-qwen2/config.json" ] || "$FTLAB" make-tiny-model "$FTLAB_HOME/tiny-qwen2" --hidden-size 128 --layers 4 2>/dev/null
"$FTLAB" make-dataset "$FTLAB_HOME/datasets/arithmetic-chat.jsonl" --rows 512

echo "== submitting a LoRA SFT job and watching it live"
job=$("$FTLAB" submit --quiet --template basic --name demo \
  --set base_model="$FTLAB_HOME/tiny-qwen2" --set dataset.uri=arithmetic-chat.jsonl \
  --set max_steps=150 --set per_device_train_batch_size=8 --set gradient_accumulation_steps=1 \
  --set learning_rate=3e-3 --set max_seq_length=128 --set save_steps=50 \
  --set dataset.eval_split=0.05 --set eval_strategy=steps --set eval_steps=50)
echo "job $job"
status=0
"$FTLAB" watch "$job" || status=$?

echo "== checkpoints"
"$FTLAB" checkpoints "$job"
"$FTLAB" get "$job"
echo "== the trained adapter, as a zip stream (verified against its sha256 manifest)"
"$FTLAB" download "$job" --what adapter -o "$FTLAB_HOME/adapter.zip" -q || status=$?
state=$("$FTLAB" get "$job" --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["state"].removeprefix("JOB_STATE_"))')
stop_server
trap - EXIT
echo "== server stopped; demo took $(( $(date +%s) - started ))s"
echo "$state"
exit $status
