#!/usr/bin/env bash
# A full filesystem and a read-only one (small tmpfs mounts of this test's own): every write of a
# checkpoint or an output fails with one line naming the path and the reason, and the file that was
# there before is still there, unharmed; no partial or temporary file is left. Needs to mount a
# tmpfs (root or CAP_SYS_ADMIN): skipped, saying so, where it cannot.
set -uo pipefail
LATENT="$1"
T="$(mktemp -d)"
trap 'umount "$T/full" "$T/ro" 2>/dev/null; rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/full" "$T/ro"
if ! mount -t tmpfs -o size=512k tmpfs "$T/full" 2>/dev/null; then
  echo "skipped: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)"
  exit 77
fi
$PY -c "
import random; r = random.Random(1)
open('$T/t.csv', 'w').write(''.join(','.join(f'{r.random():.3f}' for _ in range(8)) + '\n' for _ in range(300)))"
CONFIG='{"type": "mlp_vae", "hidden": [16], "latent": 2}'
"$LATENT" train --data "$T/t.csv" --config "$CONFIG" --epochs 1 --out "$T/full/run" --quiet >/dev/null 2>&1
check "a small run fits on the small filesystem" [ -s "$T/full/run/model.safetensors" ]
cp "$T/full/run/model.safetensors" "$T/good.safetensors"

# --- full ---------------------------------------------------------------------------------------
dd if=/dev/zero of="$T/full/filler" bs=4k >/dev/null 2>&1
expect_error "cannot write $T/full/run/" "$LATENT" train --resume "$T/full/run/model.safetensors" --epochs 3 --quiet
check "a full disk: the error says why" grep -q "No space left on device" "$T/err"
check "a full disk: the checkpoint is unharmed after train --resume" cmp -s "$T/full/run/model.safetensors" "$T/good.safetensors"
expect_error "cannot write $T/full/run/model.safetensors: No space left on device" "$LATENT" calibrate "$T/full/run/model.safetensors"
check "a full disk: the checkpoint is unharmed after calibrate" cmp -s "$T/full/run/model.safetensors" "$T/good.safetensors"
expect_error "cannot write $T/full/s.npy: No space left on device" "$LATENT" sample "$T/good.safetensors" -n 500 --npy "$T/full/s.npy"
check "a full disk: no partial output" [ ! -e "$T/full/s.npy" ]
check "a full disk: no temporary file left" [ -z "$(find "$T/full" -name '*.tmp.*')" ]

# --- read-only ----------------------------------------------------------------------------------
mount -t tmpfs -o size=512k tmpfs "$T/ro"
cp "$T/good.safetensors" "$T/ro/model.safetensors"
mount -o remount,ro "$T/ro"
expect_error "cannot write $T/ro/model.safetensors: Read-only file system" "$LATENT" calibrate "$T/ro/model.safetensors"
check "read-only: the checkpoint is unharmed after calibrate" cmp -s "$T/ro/model.safetensors" "$T/good.safetensors"
expect_error "Read-only file system" "$LATENT" train --resume "$T/ro/model.safetensors" --epochs 2 --quiet
check "read-only: the checkpoint is unharmed after train --resume" cmp -s "$T/ro/model.safetensors" "$T/good.safetensors"
expect_error "cannot write $T/ro/s.npy: Read-only file system" "$LATENT" sample "$T/good.safetensors" -n 4 --npy "$T/ro/s.npy"
expect_error "Read-only file system" "$LATENT" train --data "$T/t.csv" --config "$CONFIG" --epochs 1 --out "$T/ro/new" --quiet

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
