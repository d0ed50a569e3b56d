#!/usr/bin/env bash
# Data-parallel training on this machine: 1 rank x 2 threads against 2 ranks x 1 thread (loopback,
# c10d/Gloo), for the 784-400-20 mlp_vae (fused step) and a conv_vae (autograd, buckets overlapping
# the backward pass). Runs are interleaved (A B A B A B) and the median samples/s of each side's
# second epoch is kept. Then Gloo's own all-reduce time for the bytes one step all-reduces
# (bench/allreduce_time: one ProcessGroupGloo::allreduce of that many bytes, 2 ranks), against the
# communication time per step the training measured (rank 0's wait: what overlap did not hide,
# including the wait for the slower rank).
#   bench/distributed.sh [BUILD_DIR (default build)]
set -euo pipefail
B=${1:-build}
L="$B/latent"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PY=/usr/bin/python3
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"

run() {  # run NAME ARGS... -> prints samples/s comm_s bytes steps of epoch 2
  local name=$1; shift
  rm -rf "$T/$name"
  "$L" train "$@" --epochs 2 --seed 1 --quiet --out "$T/$name" >/dev/null 2>&1
  $PY -c "
import json; m = json.loads(open('$T/$name/metrics.jsonl').readlines()[-1])
print(m['samples_per_s'], m.get('comm_s', 0), m.get('allreduce_bytes_per_step', 0))"
}

declare -A CONFIG=(
  [mlp]='{"type": "mlp_vae", "hidden": [400], "latent": 20}'
  [conv]='{"type": "conv_vae", "channels": [32, 64], "hidden": [256], "latent": 20}'
)
declare -A LIMIT=([mlp]=30000 [conv]=6000)
for model in ${MODELS:-mlp conv}; do
  common=(--data fashion-mnist --config "${CONFIG[$model]}" --limit "${LIMIT[$model]}" --batch-size 128)
  one=() two=() comm=() single=() bytes=0
  for rep in 1 2 3; do
    read -r s _ _ < <(run one "${common[@]}" --threads 2)
    one+=("$s")
    read -r s _ _ < <(run single "${common[@]}" --threads 1)
    single+=("$s")
    read -r s c b < <(run two "${common[@]}" --nproc 2 --threads 1)
    two+=("$s"); comm+=("$c"); bytes=$b
  done
  steps=$(( (${LIMIT[$model]} + 127) / 128 ))
  port=$((25000 + RANDOM % 5000))
  gloo=$(for r in 0 1; do WORLD_SIZE=2 RANK=$r MASTER_PORT=$port "$B/bench/allreduce_time" 80 "$bytes" & done; wait)
  $PY - "$model" "$steps" "$bytes" "$gloo" "${one[*]}" "${two[*]}" "${comm[*]}" "${single[*]}" <<'PYEOF'
import json, statistics, sys
model, steps, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tiny, gloo = [json.loads(l) for l in sys.argv[4].splitlines()]
one = [float(x) for x in sys.argv[5].split()]
two = [float(x) for x in sys.argv[6].split()]
comm = [float(x) for x in sys.argv[7].split()]
single = statistics.median(float(x) for x in sys.argv[8].split())
a, b = statistics.median(one), statistics.median(two)
c = statistics.median(comm) / steps * 1000
print(f"{model}: 1 rank x 2 threads {a:,.0f} samples/s; 2 ranks x 1 thread {b:,.0f} samples/s: {b / a:.2f}x "
      f"(runs: {', '.join(f'{x:,.0f}' for x in one)} | {', '.join(f'{x:,.0f}' for x in two)})")
print(f"{model}: {nbytes:,} bytes all-reduced per step; communication wait {c:.2f} ms per step (rank 0); "
      f"Gloo's all-reduce of those bytes {gloo['ms_median']:.2f} ms (median; mean {gloo['ms_mean']:.2f}): {c / gloo['ms_median']:.2f}x")
# The inputs of bench/scaling_model.py: seconds per sample on one thread, bytes per step, and
# Gloo's cost here: a tiny all-reduce (latency) and the per-byte rate of this one.
print("model-input " + json.dumps({"model": model, "s_per_sample_1thread": 1 / single, "bytes_per_step": nbytes,
      "allreduce_ms_80B": tiny["ms_median"], "allreduce_ms": gloo["ms_median"], "ratio_2x1_vs_1x2": b / a,
      "comm_ms_per_step": c}))
PYEOF
done
