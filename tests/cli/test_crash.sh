#!/usr/bin/env bash
# Crash consistency: `latent train` killed with SIGKILL at 20 random moments (a small table, so epochs
# and checkpoints follow each other every ~0.1 s and kills land in every phase), resumed after each kill from whatever
# checkpoint is there. After every kill that checkpoint must load; the run must end with the same
# numbers as an uninterrupted one. Then `calibrate` (which rewrites the checkpoint) and `sample`
# (which writes outputs) killed the same way: the checkpoint always loads, an output is whole or absent.
set -uo pipefail
LATENT="$1"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.sh"
KILLS=${LATENT_CRASH_KILLS:-20}
$PY -c "
import random; r = random.Random(1)
open('$T/t.csv', 'w').write(''.join(','.join(f'{r.random():.3f}' for _ in range(64)) + '\n' for _ in range(4000)))"
TRAIN=(--data "$T/t.csv" --config '{"type": "mlp_vae", "hidden": [1024], "latent": 4}' --epochs 20 --seed 4 --threads 2 --quiet)

"$LATENT" train "${TRAIN[@]}" --out "$T/ref" >/dev/null 2>&1
check "the uninterrupted run finishes" [ -s "$T/ref/model.safetensors" ]

loads() { "$LATENT" eval "$1" --limit 20 --iwae-k 0 --json >/dev/null 2>"$T/eval.err"; }
bad=0 resumed=0 during_write=0
for i in $(seq "$KILLS"); do
  if [ -s "$T/run/model.safetensors" ]; then
    "$LATENT" train --resume "$T/run/model.safetensors" --quiet >/dev/null 2>&1 &
    resumed=$((resumed + 1))
  else
    "$LATENT" train "${TRAIN[@]}" --out "$T/run" >/dev/null 2>&1 &
  fi
  pid=$!
  # A busy machine may take seconds to start: the first run lives until its first checkpoint.
  while [ $resumed -eq 0 ] && kill -0 $pid 2>/dev/null && [ ! -s "$T/run/model.safetensors" ]; do sleep 0.02; done
  sleep "$($PY -c "import random; print(random.Random($i).uniform(0.2, 1.5))")"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  # A kill in the middle of a checkpoint write leaves its temporary file (removed by the next write).
  ls "$T/run"/.model.safetensors.tmp.* >/dev/null 2>&1 && during_write=$((during_write + 1))
  if [ -e "$T/run/model.safetensors" ] && ! loads "$T/run/model.safetensors"; then
    bad=$((bad + 1))
    echo "after kill $i: $(cat "$T/eval.err")"
  fi
done
# Five more kills aimed at checkpoint writes: the moment a temporary checkpoint appears. Each on a
# copy of the run given more epochs (the run itself may have finished by now, and then writes nothing).
for i in $(seq 5); do
  rm -rf "$T/aim"
  cp -r "$T/run" "$T/aim"
  rm -f "$T/aim"/.model.safetensors.tmp.*
  "$LATENT" train --resume "$T/aim/model.safetensors" --epochs 40 --quiet >/dev/null 2>&1 &
  pid=$!
  while kill -0 $pid 2>/dev/null && ! compgen -G "$T/aim/.model.safetensors.tmp.*" >/dev/null; do :; done
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  compgen -G "$T/aim/.model.safetensors.tmp.*" >/dev/null && during_write=$((during_write + 1))
  loads "$T/aim/model.safetensors" || { bad=$((bad + 1)); echo "after aimed kill $i: $(cat "$T/eval.err")"; }
done
KILLS=$((KILLS + 5))
echo "$KILLS kills, $resumed of them of resumed runs; $during_write left a temporary checkpoint (killed while writing one)"
check "the checkpoint loads after each of $KILLS kills" [ "$bad" -eq 0 ]
check "some kills landed while a checkpoint was being written" [ "$during_write" -ge 1 ]
"$LATENT" train --resume "$T/run/model.safetensors" --quiet >/dev/null 2>&1
check "stale temporary checkpoints are gone" [ -z "$(ls -A "$T/run" | grep '\.tmp\.' || true)" ]
check "the killed and resumed run ends with the uninterrupted run's numbers" $PY -c "
import json, sys
a = [json.loads(l) for l in open('$T/ref/metrics.jsonl')]
b = [json.loads(l) for l in open('$T/run/metrics.jsonl')]
keys = ['epoch', 'train_loss', 'train_recon', 'train_kl', 'test_elbo', 'test_recon', 'test_kl', 'active_units']
sys.exit(0 if len(a) == len(b) == 20 and [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b] else 1)"

# calibrate rewrites the checkpoint in place; sample writes a PNG and an NPY.
cp "$T/ref/model.safetensors" "$T/cal.safetensors"
bad=0 partial=0
for i in $(seq 10); do
  "$LATENT" calibrate "$T/cal.safetensors" >/dev/null 2>&1 &
  pid=$!
  sleep "$($PY -c "import random; print(random.Random(100 + $i).uniform(0.05, 1.0))")"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  loads "$T/cal.safetensors" || bad=$((bad + 1))
  rm -f "$T/s.npy"
  "$LATENT" sample "$T/ref/model.safetensors" -n 20000 --npy "$T/s.npy" >/dev/null 2>&1 &
  pid=$!
  sleep "$($PY -c "import random; print(random.Random(200 + $i).uniform(0.05, 0.8))")"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  if [ -e "$T/s.npy" ]; then
    $PY -c "import numpy as np; assert np.load('$T/s.npy').shape[0] == 20000" 2>/dev/null || partial=$((partial + 1))
  fi
done
check "the calibrated checkpoint loads after each of 10 kills" [ "$bad" -eq 0 ]
check "sample's output is whole or absent after each of 10 kills" [ "$partial" -eq 0 ]

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
