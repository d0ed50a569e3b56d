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
# serve LOG ARGS...: starts `latent serve ARGS --port 0` in the background, waits for its address,
# and sets $server (its pid) and $url.
server=""
trap 'kill $server 2>/dev/null || true' EXIT
serve() {
  local log="$1"
  shift
  "$latent" serve "$@" --port 0 >"$log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    grep -q "latent explorer: http" "$log" && break
    kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
  done
  url="$(grep -o 'http://[^ ]*' "$log" | head -1)"
}

# With the small SD autoencoder of the unit tests' fixtures (channels [32, 64], factor 2) for the SD
# latents view: 64x64 images encode and decode in milliseconds.
serve "$work/serve.log" "$work/run/model.safetensors" --runs "$work/runs" --vae "$here/../fixtures/sd/diffusers_f32.safetensors" --sd-size 64
LATENT_URL="$url" LATENT_SCREENSHOTS="${LATENT_SCREENSHOTS:-$work/screenshots}" LATENT_UPLOAD_PNG="$work/run/samples.png" \
  LATENT_UPLOAD_PNG_B="$work/run/reconstructions.png" \
  node --test --test-reporter=spec "$here/explorer.test.mjs"
kill $server 2>/dev/null || true

# The Molecules view on a small SMILES VAE trained on the chemistry fixture's molecules (needs RDKit).
if "$latent" info | grep -q "rdkit: no"; then
  echo "skipped: the Molecules view (this latent was built without RDKit)"
  exit 0
fi
if [ ! -f "$work/molecules/model.safetensors" ]; then
  tail -n +3 "$here/../fixtures/chem_properties.csv" | cut -d, -f2 | grep -v '^$' | grep -v '"' | grep -v '\.' >"$work/molecules.smi"
  "$latent" train --data "$work/molecules.smi" --config \
    '{"type": "smiles_vae", "latent": 8, "embedding": 16, "encoder_hidden": 32, "decoder_hidden": 64, "decoder_layers": 2}' \
    --epochs 4 --batch-size 16 --quiet --out "$work/molecules" >/dev/null
fi
serve "$work/serve-molecules.log" "$work/molecules/model.safetensors"
LATENT_URL="$url" LATENT_SCREENSHOTS="${LATENT_SCREENSHOTS:-$work/screenshots}" \
  node --test --test-reporter=spec "$here/molecules.test.mjs"
