#!/usr/bin/env bash
# Test NLL on dynamically binarized Fashion-MNIST: the MLP VAE (784-400-20) trained on the ELBO, on
# the IWAE bound with k = 5 and k = 50, and a conv VAE on the ELBO; the same epochs, seed and data
# for each, then the importance-weighted NLL estimate with k = 5000 on the same test images.
# Prints a Markdown table: training time, test ELBO and test NLL in nats.
#   bench/nll_table.sh [EPOCHS (default 5)] [TEST_IMAGES (default 500)]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-5}"
test_images="${2:-500}"
out=build/nll-table
mkdir -p "$out"
[ -x build/latent ] || { echo "build/latent is missing: run scripts/build.sh"; exit 1; }

mlp='{"type": "mlp_vae", "hidden": [400], "latent": 20}'
conv='{"type": "conv_vae", "channels": [32, 64], "hidden": [256], "latent": 20}'
runs=("vae|$mlp|elbo|1" "iwae-k5|$mlp|iwae|5" "iwae-k50|$mlp|iwae|50" "conv-vae|$conv|elbo|1")

for run in "${runs[@]}"; do
  IFS='|' read -r name config objective k <<<"$run"
  extra=()
  [ "$objective" = iwae ] && extra=(--objective iwae --k "$k")
  echo "== $name: training $epochs epochs" >&2
  build/latent train --data fashion-mnist --config "$config" --binarize --epochs "$epochs" --seed 1 \
    "${extra[@]}" --out "$out/$name" --quiet
  echo "== $name: IWAE NLL, k = 5000, $test_images test images" >&2
  build/latent eval "$out/$name/model.safetensors" --iwae-k 5000 --limit "$test_images" --json >"$out/$name/eval.json"
done

/usr/bin/python3 - "$out" "$epochs" "$test_images" <<'PY'
import json, sys
out, epochs, n = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [("vae", "MLP 784-400-20", "ELBO (VAE)"), ("iwae-k5", "MLP 784-400-20", "IWAE k = 5"),
        ("iwae-k50", "MLP 784-400-20", "IWAE k = 50"), ("conv-vae", "conv [32, 64] + 256", "ELBO (VAE)")]
print(f"| model | objective | epochs | training time | test ELBO | test NLL (IWAE k = 5000, {n} images) |")
print("| --- | --- | --- | --- | --- | --- |")
for name, arch, objective in rows:
    m = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")][-1]
    e = json.load(open(f"{out}/{name}/eval.json"))
    print(f"| {arch} | {objective} | {epochs} | {m['wall_s']:.0f} s | {e['elbo']:.2f} | {e['iwae_nll']:.2f} |")
PY
