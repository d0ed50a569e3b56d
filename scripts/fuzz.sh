#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/: clang with AddressSanitizer, UndefinedBehaviorSanitizer and
# coverage, in build-sanitize/, the tree whose unit tests `scripts/test.sh sanitize` runs) and runs
# each on its seed corpus (fuzz/corpus/<target>/) for SECONDS. Inputs a run discovers go to
# build-sanitize/corpus/<target>/ (never into the repo); a crash's input to build-sanitize/crashes/. Prints one line per target: executions, coverage (edges), corpus size,
# crashes; exits non-zero when any target crashed.
#   scripts/fuzz.sh [SECONDS (default 60)] [TARGET ...]   (CI: scripts/test.sh fuzz runs 20 s each)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors npy idx csv image request checkpoint sd_weights smiles)
command -v clang++ >/dev/null || { echo "scripts/fuzz.sh: needs clang++ (scripts/setup.sh installs it)"; exit 1; }
B=build-sanitize
cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DLATENT_FUZZ=ON -DLATENT_BUILD_BENCH=OFF \
  >$B.log 2>&1 || { cat $B.log; exit 1; }
cmake --build $B -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >>$B.log 2>&1 || { tail -50 $B.log; exit 1; }
mkdir -p $B/crashes
status=0
printf '%-12s %12s %8s %8s %8s\n' target executions edges corpus crashes
for t in "${targets[@]}"; do
  work=$B/corpus/$t
  mkdir -p "$work"
  log=$B/fuzz_$t.log
  dict=()
  case "$t" in request | checkpoint | safetensors | sd_weights) dict=(-dict=fuzz/dict/json.dict) ;; smiles) dict=(-dict=fuzz/dict/smiles.dict) ;; esac
  set +e
  $B/fuzz/fuzz_$t "$work" "fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1 -artifact_prefix="$B/crashes/$t-" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  crashes=$(ls $B/crashes/ 2>/dev/null | grep -cE "^$t-(crash|timeout|oom|leak)-" || true)  # not slow-unit reports
  printf '%-12s %12s %8s %8s %8s\n' "$t" "${runs:-?}" "${edges:-?}" "$(ls "$work" | wc -l)" "$crashes"
  if [ $rc -ne 0 ]; then
    status=1
    grep -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | head -5
    echo "  (log: $log)"
  fi
done
exit $status
