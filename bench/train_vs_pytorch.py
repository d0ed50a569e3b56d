#!/usr/bin/python3
"""latent against PyTorch eager on the pytorch/examples VAE, side by side in one run.

Model: 784-400-20, ReLU, Bernoulli likelihood on logits, Adam (lr 1e-3), batch 128, on
Fashion-MNIST (60,000 training images, pixels in [0, 1]); test loss = negative ELBO per example on
the 10,000 test images. PyTorch runs with its best thread count (each candidate is timed on a
short trial first); latent runs `latent train` with the same settings. Prints samples/s of each
(mean over epochs, training only), their ratio, and the test loss after the same epochs.

    /usr/bin/python3 bench/train_vs_pytorch.py [--epochs 10] [--bf16] [--cap avx2] [--latent build/latent]

latent also runs with its default thread count ("auto": every core, fewer while other processes keep
cores busy). --cap avx2 runs both sides as on a CPU without AVX-512 (bench/cpu_cap.py); the header
names the CPU and what each side runs on it.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_cap  # noqa: E402

cpu_cap.apply_from_argv()
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DATA = os.environ.get("LATENT_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


def idx_images(name):
    raw = gzip.open(os.path.join(DATA, name)).read()
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0)


class VAE(nn.Module):
    """The pytorch/examples VAE (fc1, fc21, fc22, fc3, fc4), on logits."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x, eps):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def loss_terms(logits, x, mu, logvar):
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    return recon, kl


def pytorch_train(train, test, epochs, threads, batch=128, max_steps=None, seed=0, bf16=False):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rates, test_loss, steps = [], None, 0
    for _ in range(epochs):
        perm = torch.randperm(len(train))
        seen, start = 0, time.perf_counter()
        for i in range(0, len(train), batch):
            x = train[perm[i:i + batch]]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, mu, logvar = model(x, torch.randn(x.shape[0], 20))
            recon, kl = loss_terms(logits.float(), x, mu.float(), logvar.float())
            loss = (recon + kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += x.shape[0]
            steps += 1
            if max_steps and steps >= max_steps:
                return seen / (time.perf_counter() - start), None
        rates.append(seen / (time.perf_counter() - start))
        with torch.no_grad():
            total = 0.0
            for i in range(0, len(test), 1000):
                x = test[i:i + 1000]
                logits, mu, logvar = model(x, torch.randn(x.shape[0], 20))
                recon, kl = loss_terms(logits, x, mu, logvar)
                total += (recon + kl).sum().item()
            test_loss = total / len(test)
    return sum(rates) / len(rates), test_loss


def latent_train(binary, epochs, threads, precision="fp32"):
    """threads 0: latent's default (every core, fewer while other processes keep cores busy)."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([binary, "train", "--data", "fashion-mnist", "--epochs", str(epochs), "--batch-size", "128",
                        "--lr", "1e-3", "--threads", str(threads), "--seed", "0", "--quiet", "--out", out,
                        "--precision", precision],
                       check=True, stdout=subprocess.DEVNULL)
        metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    rate = sum(m["samples_per_s"] for m in metrics) / len(metrics)
    return rate, -metrics[-1]["test_elbo"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--latent", default=os.path.join(os.path.dirname(__file__), "..", "build", "latent"))
    ap.add_argument("--threads", default="1,2", help="thread counts to try for each side")
    ap.add_argument("--bf16", action="store_true",
                    help="also mixed precision: latent --precision bf16 and PyTorch under torch.autocast(bfloat16)")
    cpu_cap.add_argument(ap)
    args = ap.parse_args()
    candidates = [int(t) for t in args.threads.split(",")]
    print("\n".join(cpu_cap.header(args.cap, args.latent)))
    train, test = idx_images("train-images-idx3-ubyte.gz"), idx_images("t10k-images-idx3-ubyte.gz")

    trial = {t: pytorch_train(train, test, 1, t, max_steps=150)[0] for t in candidates}
    best = max(trial, key=trial.get)
    print("PyTorch trial (150 steps): " + ", ".join(f"{t} threads {r:,.0f} samples/s" for t, r in trial.items()) +
          f" -> best {best}")
    pt_rate, pt_loss = pytorch_train(train, test, args.epochs, best)
    results = [(f"PyTorch {torch.__version__} eager", best, pt_rate, pt_loss)]
    if args.bf16:
        rate, loss = pytorch_train(train, test, args.epochs, best, bf16=True)
        results.append(("PyTorch autocast bf16", best, rate, loss))
    precisions = ["fp32", "bf16"] if args.bf16 else ["fp32"]
    for precision in precisions:
        for t in candidates + [0]:
            rate, loss = latent_train(args.latent, args.epochs, t, precision)
            results.append(("latent" if precision == "fp32" else "latent --precision bf16", t, rate, loss))

    print(f"\n784-400-20 VAE, Fashion-MNIST, batch 128, Adam 1e-3, {args.epochs} epochs")
    print(f"{'':26s} {'threads':>7s} {'samples/s':>11s} {'ratio':>7s} {'test loss (nats)':>17s}")
    for name, t, rate, loss in results:
        print(f"{name:26s} {t if t else 'auto':>7} {rate:11,.0f} {rate / pt_rate:6.2f}x {loss:17.2f}")
    print()
    for precision in precisions:
        rows = [r for r in results if r[0].startswith("latent") and (precision == "bf16") == ("bf16" in r[0])]
        best_latent = max(rows, key=lambda r: r[2])
        print(f"latent {precision} / PyTorch fp32 (best thread counts): {best_latent[2] / pt_rate:.2f}x samples/s; "
              f"test loss {best_latent[3]:.2f} vs {pt_loss:.2f} nats (difference {best_latent[3] - pt_loss:+.2f})")
    if args.bf16:
        ac = results[1]
        best_bf16 = max((r for r in results if r[0].startswith("latent --precision bf16")), key=lambda r: r[2])
        print(f"latent bf16 / PyTorch autocast bf16: {best_bf16[2] / ac[2]:.2f}x samples/s; "
              f"test loss {best_bf16[3]:.2f} vs {ac[3]:.2f} nats")


if __name__ == "__main__":
    main()
