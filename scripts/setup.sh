#!/usr/bin/env bash
# Installs every system package latent needs (Debian 12). Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev            # LibTorch (C++ tensors, autograd, nn)
  libopenblas0-openmp     # fast BLAS behind LibTorch's matrix products (replaces reference BLAS)
  libdnnl-dev             # oneDNN sgemm for the fused MLP training step
  libgloo-dev             # Gloo's headers: distributed training on LibTorch's c10d process group
  librdkit-dev libboost-dev rdkit-data libcairo2-dev  # RDKit (C++) and its data: molecules, the SMILES VAE; cairo: its drawings
  libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libstb-dev zlib1g-dev
  libgtest-dev            # unit tests
  clang libclang-rt-14-dev  # libFuzzer and the sanitizers' runtimes for the fuzz targets (scripts/fuzz.sh)
  dataset-fashion-mnist   # the default data
  python3-torch python3-numpy python3-rdkit  # PyTorch and RDKit references for test fixtures and benchmarks
  chromium                # the browser the explorer's tests drive (headless)
)
# Node.js runs the browser tests (playwright-core needs Node >= 20). Machines that already have a
# node (for instance from NodeSource, whose package includes npm) keep it; others get Debian's.
command -v node > /dev/null || packages+=(nodejs)
command -v npm > /dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# playwright-core for the browser tests, at the version pinned in tests/browser/package-lock.json.
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -d "$here/tests/browser/node_modules/playwright-core" ]; then
  echo "setup: installing playwright-core (npm) into tests/browser"
  npm ci --prefix "$here/tests/browser" --no-audit --no-fund --loglevel=error
fi
