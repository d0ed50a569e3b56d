#!/usr/bin/env bash
# Browser tests of the explorer: trains a small model, starts `latent serve` on a free port, and runs
# explorer.test.mjs (node's test runner + playwright-core + Debian's chromium) against it.
# Usage: run.sh LATENT_BINARY WORK_DIR
set -euo pipefail
latent="$1"
work="$2"
here="$(cd "$(dirname "$0")" && pwd)"
[ -d "$here/node_modules/playwright-core" ] || { echo "playwright-core is missing: run scripts/setup.sh"; exit 1; }
[ -x /usr/bin/chromium ] || { echo "chromium is missing: run scripts/setup.sh"; exit 1; }
mkdir -p "$work"
if [ ! -f "$work/run/model.safetensors" ]; then
  "$latent" train --data fashion-mnist --limit 6000 --epochs 3 --quiet --out "$work/run"
fi
log="$work/serve.log"
# With the small SD autoencoder of the unit tests' fixtures (channels [32, 64], factor 2) for the SD
# latents view: 64x64 images encode and decode in milliseconds.
"$latent" serve "$work/run/model.safetensors" --port 0 --vae "$here/../fixtures/sd/diffusers_f32.safetensors" --sd-size 64 \
  > "$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "latent explorer: http" "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
url="$(grep -o 'http://[^ ]*' "$log" | head -1)"
LATENT_URL="$url" LATENT_SCREENSHOTS="${LATENT_SCREENSHOTS:-$work/screenshots}" LATENT_UPLOAD_PNG="$work/run/samples.png" \
  LATENT_UPLOAD_PNG_B="$work/run/reconstructions.png" \
  node --test --test-reporter=spec "$here/explorer.test.mjs"
