#!/usr/bin/env bash
# Explorer decode latency while the explorer trains (the Train tab): `latent serve` answers
# bench/serve_load's clients first on an idle server, then while a run started through
# /api/train/start trains on its own thread (Fashion-MNIST, the default 784-400-2 model), side by
# side in one run. Target: p99 < 20 ms at 10 clients while training, on 2 cores.
#   bench/serve_while_training.sh [CHECKPOINT (default runs/fmnist/model.safetensors)] [--clients N]
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint=runs/fmnist/model.safetensors
clients=10
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    *) checkpoint="$1"; shift ;;
  esac
done
[ -f "$checkpoint" ] || { echo "no checkpoint at $checkpoint: run scripts/quickstart.sh or latent train first"; exit 1; }
[ -x build/bench/serve_load ] || { echo "build/bench/serve_load is missing: run scripts/build.sh"; exit 1; }
work="$(mktemp -d)"
pid=""
trap '[ -z "$pid" ] || kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
build/latent serve "$checkpoint" --port 0 --runs "$work/runs" > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "http://" "$work/log" && break; sleep 0.1; done
port="$(grep -o 'http://[^ ]*' "$work/log" | head -1 | sed 's|.*:\([0-9]*\)/.*|\1|')"
head -1 "$work/log"
build/bench/serve_load --port "$port" --clients "$clients" --requests 100000 --name idle | tee "$work/idle"
curl -sf -X POST "http://127.0.0.1:$port/api/train/start" -H 'Content-Type: application/json' \
  -d '{"name": "bench", "epochs": 50}' > /dev/null
sleep 3  # the run loads Fashion-MNIST and starts stepping
build/bench/serve_load --port "$port" --clients "$clients" --requests 100000 --name training | tee "$work/training"
steps="$(curl -sf "http://127.0.0.1:$port/api/train/events?after=0" | /usr/bin/python3 -c "import json, sys; print(sum(e['type'] == 'step' for e in json.load(sys.stdin)['events']))")"
curl -sf -X POST "http://127.0.0.1:$port/api/train/stop" -H 'Content-Type: application/json' -d '{}' > /dev/null
/usr/bin/python3 - "$work/idle" "$work/training" "$steps" <<'PY'
import sys
def result(path):
    line = [l for l in open(path) if l.startswith("RESULT")][0].split()
    return {k: float(v) for k, v in (f.split("=") for f in line[2:])}
i, t = result(sys.argv[1]), result(sys.argv[2])
print(f"p99: idle {i['p99_ms']:.2f} ms, while training {t['p99_ms']:.2f} ms; requests/s {i['rps']:.0f} and {t['rps']:.0f}; "
      f"the run took {sys.argv[3]} steps by the end of the load")
PY
