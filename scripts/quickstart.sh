#!/usr/bin/env bash
# The main job: install what is missing, build, train the default VAE (784-400-20, Bernoulli) on
# Fashion-MNIST, evaluate it, and serve the explorer on it. Writes runs/fmnist/{model.safetensors,
# metrics.jsonl, samples.png, reconstructions.png}; a second run reuses the model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
if [ -f runs/fmnist/model.safetensors ]; then
  echo "runs/fmnist/model.safetensors exists; training continues to 10 epochs if it has fewer"
  build/latent train --resume runs/fmnist/model.safetensors --epochs 10
else
  build/latent train --data fashion-mnist --epochs 10 --out runs/fmnist
fi
build/latent eval runs/fmnist/model.safetensors --iwae-k 1000 --limit 1000
echo "samples: runs/fmnist/samples.png  reconstructions: runs/fmnist/reconstructions.png  metrics: runs/fmnist/metrics.jsonl"
exec build/latent serve runs/fmnist/model.safetensors --port "${LATENT_PORT:-8080}"
