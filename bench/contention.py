#!/usr/bin/python3
"""latent on a busy machine: every command with its default thread count against one thread, while
another process keeps one core busy (a shell's busy loop, placed by the scheduler as it likes).

Target: no command runs slower by default than with --threads 1, and training stays ahead of
PyTorch under the same load. Each configuration runs --reps times, interleaved (default, one
thread, default, ...), and the table shows each run and the median; with --quiet-too the same runs
without the busy process show what choosing the thread count costs on a quiet machine.

    train   latent train on Fashion-MNIST, --epochs E: mean samples/s over the epochs
    eval    latent eval --iwae-k 1000 --limit 1000 on the checkpoint: seconds
    sd      bench/sd_time at SD 1.x size (random weights), one decode to 512x512 and encode back: seconds
    serve   latent serve under bench/serve_load (8 clients, 16 codes per request): requests/s and p99 (its
            --threads is the requests served at once, each on one thread: one means one client at a time)
    PyTorch the pytorch/examples VAE (bench/train_vs_pytorch.py) with 1 and 2 threads, 1 epoch: samples/s

    /usr/bin/python3 bench/contention.py [--reps 2] [--epochs 3] [--quiet-too] [--no-sd] [--cap avx2]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cpu_cap  # noqa: E402

cpu_cap.apply_from_argv()
import train_vs_pytorch  # noqa: E402  (imports torch)

BUILD = os.path.join(HERE, "..", "build")
LATENT = os.path.join(BUILD, "latent")


class Hog:
    """One core kept busy by another process while the block runs (nothing when `on` is false)."""

    def __init__(self, on):
        self.on, self.proc = on, None

    def __enter__(self):
        if self.on:
            self.proc = subprocess.Popen(["sh", "-c", "while :; do :; done"])
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.kill()
            self.proc.wait()


def threads_args(threads):
    return [] if threads is None else ["--threads", str(threads)]


def run_train(epochs, threads):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([LATENT, "train", "--data", "fashion-mnist", "--epochs", str(epochs), "--out", out, "--quiet"] +
                       threads_args(threads), check=True, stdout=subprocess.DEVNULL)
        m = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    return statistics.mean(r["samples_per_s"] for r in m), m[-1].get("threads")


def run_eval(checkpoint, threads):
    t0 = time.perf_counter()
    subprocess.run([LATENT, "eval", checkpoint, "--iwae-k", "1000", "--limit", "1000", "--json"] + threads_args(threads),
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, None


def run_sd(weights, threads):
    out = subprocess.run([os.path.join(BUILD, "bench", "sd_time"), "--vae", weights, "--runs", "1", "--threads",
                          str(0 if threads is None else threads)], check=True, capture_output=True, text=True).stdout
    m = re.search(r"decode ([\d.]+) s, encode ([\d.]+) s", out)
    return float(m.group(1)) + float(m.group(2)), None


def run_serve(checkpoint, threads):
    server = subprocess.Popen([LATENT, "serve", checkpoint, "--port", "0", "--precision", "fp32"] + threads_args(threads),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        port = re.search(r"http://[^:]+:(\d+)/", line).group(1)
        out = subprocess.run([os.path.join(BUILD, "bench", "serve_load"), "--port", port, "--requests", "3000", "--clients", "8",
                              "--warmup", "200"], check=True, capture_output=True, text=True, timeout=600).stdout
        r = dict(f.split("=") for f in [l for l in out.splitlines() if l.startswith("RESULT")][0].split()[2:])
        return float(r["rps"]), f"p99 {float(r['p99_ms']):.2f} ms"
    finally:
        server.terminate()
        server.wait()


def run_pytorch(train, test, threads):
    rate, _ = train_vs_pytorch.pytorch_train(train, test, 1, threads)
    return rate, None


def measure(label, fn, configs, reps, higher_is_better, unit):
    """Runs fn(config) for each config, interleaved, reps times; returns rows of (label, config, values, notes)."""
    values = {c: [] for c in configs}
    notes = {c: [] for c in configs}
    for _ in range(reps):
        for c in configs:
            v, note = fn(c)
            values[c].append(v)
            if note is not None:
                notes[c].append(str(note))
            print(f"  {label}, threads {'default' if c is None else c}: {v:,.2f}" + (f" ({note})" if note else ""), flush=True)
    return [(label, c, values[c], notes[c], higher_is_better, unit) for c in configs]


def print_table(title, rows):
    print(f"\n{title}")
    print(f"{'':26s} {'threads':>8s} {'median':>10s}  runs")
    by_label = {}
    for label, c, vals, notes, higher, unit in rows:
        med = statistics.median(vals)
        by_label.setdefault(label, {})[c] = (med, higher)
        runs = ", ".join(f"{v:,.1f}" if v < 100 else f"{v:,.0f}" for v in vals)
        extra = f"  ({'; '.join(notes)})" if notes else ""
        print(f"{label:26s} {('default' if c is None else str(c)):>8s} {med:10,.2f} {unit}  {runs}{extra}")
    for label, meds in by_label.items():
        if None in meds and 1 in meds:
            (d, higher), (o, _) = meds[None], meds[1]
            speed = d / o if higher else o / d
            print(f"{label}: the default runs at {speed:.2f}x the speed of one thread")
    return by_label


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--quiet-too", action="store_true", help="also run everything without the busy process")
    ap.add_argument("--no-sd", action="store_true")
    ap.add_argument("--only", default="train,pytorch,eval,sd,serve", help="which measurements (comma-separated)")
    ap.add_argument("--checkpoint", help="for eval and serve (default: a model trained for 3 epochs first)")
    cpu_cap.add_argument(ap)
    args = ap.parse_args()
    print("\n".join(cpu_cap.header(args.cap, LATENT)))

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if not checkpoint:
            subprocess.run([LATENT, "train", "--data", "fashion-mnist", "--epochs", "3", "--out", tmp, "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)
            checkpoint = os.path.join(tmp, "model.safetensors")
        weights = None
        if not args.no_sd and "sd" in args.only.split(","):
            sys.path.insert(0, os.path.join(HERE, "..", "tests"))
            from sd_vae_reference import AutoencoderKL, randomize, save_safetensors
            from sd_vs_pytorch import SD1
            weights = os.path.join(tmp, "sd.safetensors")
            model = AutoencoderKL(SD1)
            randomize(model, 1)
            save_safetensors(weights, {k: v.float() for k, v in model.state_dict().items()})
            del model
        train, test = train_vs_pytorch.idx_images("train-images-idx3-ubyte.gz"), train_vs_pytorch.idx_images(
            "t10k-images-idx3-ubyte.gz")

        for busy in ([False, True] if args.quiet_too else [True]):
            with Hog(busy):
                rows = []
                only = args.only.split(",")
                if "train" in only:
                    rows += measure("latent train (samples/s)", lambda t: run_train(args.epochs, t), [None, 1], args.reps, True, "")
                if "pytorch" in only:
                    rows += measure("PyTorch train (samples/s)", lambda t: run_pytorch(train, test, t), [1, 2], args.reps, True, "")
                if "eval" in only:
                    rows += measure("latent eval (s)", lambda t: run_eval(checkpoint, t), [None, 1], args.reps, False, "s")
                if weights and "sd" in only:
                    rows += measure("latent sd (s)", lambda t: run_sd(weights, t), [None, 1], args.reps, False, "s")
                if "serve" in only:
                    rows += measure("latent serve (requests/s)", lambda t: run_serve(checkpoint, t), [None, 1], args.reps, True, "")
            meds = print_table("one core kept busy by another process" if busy else "quiet machine", rows)
            if "latent train (samples/s)" in meds and "PyTorch train (samples/s)" in meds:
                latent_best = meds["latent train (samples/s)"][None][0]
                pytorch_best = max(v[0] for v in meds["PyTorch train (samples/s)"].values())
                print(f"training: latent (default threads) {latent_best / pytorch_best:.2f}x PyTorch's best thread count")


if __name__ == "__main__":
    main()
