#!/usr/bin/env bash
# Explorer decode latency under load: `latent serve` and the PyTorch reference server
# (bench/serve_pytorch.py) on the same checkpoint, the same load from bench/serve_load, one after
# the other; prints both and the ratios. Target: latent p99 < 5 ms with zero errors for 50 clients
# x 10,000 requests of 16 codes, and the 20x20 grid in one request < 50 ms.
#   bench/serve_vs_pytorch.sh [CHECKPOINT (default runs/fmnist/model.safetensors)] [--cap avx2]
# --cap avx2 runs both servers as on a CPU without AVX-512 (bench/cpu_cap.py sets the same variables).
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint=runs/fmnist/model.safetensors
cap=native
while [ $# -gt 0 ]; do
  case "$1" in
    --cap) cap="$2"; shift 2 ;;
    *) checkpoint="$1"; shift ;;
  esac
done
case "$cap" in
  native) ;;
  avx2) export LATENT_MAX_CPU_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell ;;
  *) echo "--cap: native or avx2"; exit 2 ;;
esac
[ -f "$checkpoint" ] || { echo "no checkpoint at $checkpoint: run scripts/quickstart.sh or latent train first"; exit 1; }
[ -x build/bench/serve_load ] || { echo "build/bench/serve_load is missing: run scripts/build.sh"; exit 1; }

wait_for() {  # log file
  for _ in $(seq 300); do grep -q "http://" "$1" && return 0; sleep 0.1; done
  cat "$1"; exit 1
}
port_of() { grep -o 'http://[^ ]*' "$1" | head -1 | sed 's|.*:\([0-9]*\)/.*|\1|'; }

/usr/bin/python3 -c "import sys; sys.path.insert(0, 'bench'); import cpu_cap; print('\n'.join(cpu_cap.header('$cap', 'build/latent')))"
log="$(mktemp)"
pid=""
trap '[ -z "$pid" ] || kill $pid 2>/dev/null || true' EXIT
# latent as it starts by default (bf16 decoding where the CPU has AMX or AVX512-BF16), then in fp32.
for precision in auto fp32; do
  build/latent serve "$checkpoint" --port 0 --precision $precision > "$log" 2>&1 &
  pid=$!
  wait_for "$log"
  head -1 "$log"
  build/bench/serve_load --port "$(port_of "$log")" --name "latent-$precision" | tee "$log.latent-$precision"
  kill $pid; wait $pid 2>/dev/null || true
done

/usr/bin/python3 bench/serve_pytorch.py "$checkpoint" --port 0 > "$log" 2>&1 &
pid=$!
wait_for "$log"
build/bench/serve_load --port "$(port_of "$log")" --name pytorch | tee "$log.pytorch"
kill $pid; wait $pid 2>/dev/null || true

/usr/bin/python3 - "$log.latent-auto" "$log.pytorch" <<'PY'
import sys
def result(path):
    line = [l for l in open(path) if l.startswith("RESULT")][0].split()
    return {k: float(v) for k, v in (f.split("=") for f in line[2:])}
l, p = result(sys.argv[1]), result(sys.argv[2])
print(f"p99: latent {l['p99_ms']:.2f} ms vs pytorch {p['p99_ms']:.2f} ms ({p['p99_ms'] / l['p99_ms']:.1f}x lower); "
      f"throughput {l['rps']:.0f} vs {p['rps']:.0f} requests/s ({l['rps'] / p['rps']:.1f}x); "
      f"grid {l['grid_median_ms']:.2f} vs {p['grid_median_ms']:.2f} ms")
print(f"target p99 < 5 ms, 0 errors, grid < 50 ms: {'met' if l['p99_ms'] < 5 and l['errors'] == 0 and l['grid_median_ms'] < 50 else 'NOT met'}")
PY
rm -f "$log" "$log.latent-auto" "$log.latent-fp32" "$log.pytorch"
