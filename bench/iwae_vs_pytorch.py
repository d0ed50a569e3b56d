#!/usr/bin/python3
"""The importance-weighted NLL estimate (Burda et al. 2015), latent against batched PyTorch eager.

Both evaluate -log p(x) ~= -log (1/k) sum_j p(x, z_j) / q(z_j | x) with k samples per test image on
the same mlp_vae checkpoint: PyTorch loads its weights by state-dict name (tests/cli/pytorch_interop.py)
and shares each decoder product across 1024 rows (images x samples) with a float64 running
log-sum-exp, as latent does. Prints images/s of each, their ratio and the estimates. latent runs as
users run it (--precision auto: bf16x3 products on CPUs with AMX, else fp32) once before PyTorch and
once after, and with --precision fp32 where auto chose otherwise.

    /usr/bin/python3 bench/iwae_vs_pytorch.py CHECKPOINT [--k 5000] [--limit 10000] [--cap avx2] [--latent build/latent]

--cap avx2 runs both sides as on a CPU without AVX-512 (bench/cpu_cap.py); the header names the CPU
and what each side runs on it.
"""
import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_cap  # noqa: E402

cpu_cap.apply_from_argv()
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cli"))
from pytorch_interop import load_safetensors, mlp_vae  # noqa: E402

DATA = os.environ.get("LATENT_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


def pytorch_iwae_nll(model, x, k, rows=1024, seed=0):
    gen = torch.Generator().manual_seed(seed)
    d = model.fc_mu.out_features
    k_chunk = min(k, rows)
    images = max(1, rows // k_chunk)
    out = torch.empty(len(x), dtype=torch.float64)
    log2pi = math.log(2 * math.pi)
    with torch.no_grad():
        for start in range(0, len(x), images):
            xb = x[start:start + images]
            b = len(xb)
            h = model.encoder(xb)
            mu, logvar = model.fc_mu(h), model.fc_logvar(h)
            run_max = torch.full((b,), -math.inf, dtype=torch.float64)
            run_sum = torch.zeros(b, dtype=torch.float64)
            for k0 in range(0, k, k_chunk):
                kc = min(k_chunk, k - k0)
                eps = torch.randn(kc, b, d, generator=gen)
                z = mu + torch.exp(0.5 * logvar) * eps  # [kc, b, d]
                logits = model.decoder(z.reshape(kc * b, d)).reshape(kc, b, -1)
                log_px = -F.binary_cross_entropy_with_logits(logits, xb.expand(kc, b, -1), reduction="none").sum(-1)
                log_pz = -0.5 * (z.square() + log2pi).sum(-1)
                log_q = -0.5 * (log2pi + logvar + eps.square()).sum(-1)
                lw = (log_px + log_pz - log_q).double()
                new_max = torch.maximum(run_max, lw.max(0).values)
                run_sum = run_sum * torch.exp(run_max - new_max) + torch.exp(lw - new_max).sum(0)
                run_max = new_max
            out[start:start + b] = run_max + torch.log(run_sum) - math.log(k)
    return -out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latent", default=os.path.join(os.path.dirname(__file__), "..", "build", "latent"))
    cpu_cap.add_argument(ap)
    args = ap.parse_args()
    header = cpu_cap.header(args.cap, args.latent)

    tensors, meta = load_safetensors(args.checkpoint)
    config = json.loads(meta["model"])
    model = mlp_vae(config, int(np.prod(json.loads(meta["data_shape"]))))
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "data."))}, strict=True)
    raw = gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")).read()
    x = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 784)[: args.limit].astype(np.float32) / 255)

    def run_latent(*extra):
        t0 = time.perf_counter()
        out = subprocess.run([args.latent, "eval", args.checkpoint, "--iwae-k", str(args.k), "--limit", str(args.limit),
                              "--threads", str(args.threads), "--json", *extra], check=True, capture_output=True, text=True)
        result = json.loads(out.stdout)
        return time.perf_counter() - t0, result["iwae_nll"], result["iwae_precision"]

    # latent as users run it (--precision auto) before and after PyTorch, so that a change in the
    # machine's speed during the run shows; in fp32 too where auto chose something else.
    before_s, latent_nll, latent_precision = run_latent()
    fp32 = run_latent("--precision", "fp32") if latent_precision != "fp32" else None

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pt_nll = pytorch_iwae_nll(model, x, args.k).mean().item()
    pt_s = time.perf_counter() - t0

    after_s, _, _ = run_latent()
    latent_s = (before_s + after_s) / 2

    n = len(x)
    print(f"IWAE NLL, k = {args.k}, {n} Fashion-MNIST test images, {args.threads} threads, {config}")
    print("\n".join(header))
    print(f"{'':32s} {'seconds':>9s} {'images/s':>9s} {'NLL (nats)':>11s}")
    print(f"{'PyTorch ' + torch.__version__ + ' eager':32s} {pt_s:9.1f} {n / pt_s:9.2f} {pt_nll:11.3f}")
    for label, secs in (("before", before_s), ("after", after_s)):
        print(f"{'latent, ' + latent_precision + ' (default), ' + label:32s} {secs:9.1f} {n / secs:9.2f} {latent_nll:11.3f}")
    if fp32:
        print(f"{'latent, fp32':32s} {fp32[0]:9.1f} {n / fp32[0]:9.2f} {fp32[1]:11.3f}")
    print(f"\nlatent is {pt_s / latent_s:.2f}x faster ({latent_precision}, mean of its two runs; "
          f"{pt_s / max(before_s, after_s):.2f}x against the slower)")
    if fp32:
        print(f"fp32: {pt_s / fp32[0]:.2f}x; the estimates differ by {abs(latent_nll - fp32[1]):.1e} nats")
    print(f"latent and PyTorch differ by {abs(latent_nll - pt_nll):.1e} nats (Monte Carlo: each draws its own noise)")


if __name__ == "__main__":
    main()
