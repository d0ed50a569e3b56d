#!/usr/bin/python3
"""SD's first-stage autoencoder at SD 1.x size: latent against the PyTorch eager reference, one run.

Random weights of the SD 1.x architecture (channels 128, 256, 512, 512; two resnets per level;
4 latent channels) are written once as a diffusers-layout safetensors file. Then, each in its own
process (so peak memory is its own): the PyTorch reference of tests/sd_vae_reference.py and
build/bench/sd_time decode a 1x4x64x64 latent to 512x512 and encode the image back, three times; the
first run includes each library's one-time set-up (kernel generation, weight reordering), the
last is the steady state. Prints seconds, the ratio, peak resident memory of each process (its own
VmHWM: getrusage's maxrss would carry this script's memory over through fork and exec), the
decoded images' difference from PyTorch's, the CPU and what each side ran on it, and how many of the
oneDNN primitives latent ran were oneDNN's reference ("ref:") kernels (a separate run with
ONEDNN_VERBOSE=1, so that printing does not slow the timed ones). --cap avx2 runs both sides as on a
CPU without AVX-512 (bench/cpu_cap.py).

    /usr/bin/python3 bench/sd_vs_pytorch.py [--threads 2] [--cap avx2] [--sd-time build/bench/sd_time]
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cpu_cap  # noqa: E402

cpu_cap.apply_from_argv()
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from sd_vae_reference import AutoencoderKL, randomize, save_safetensors  # noqa: E402

RUNS = 3  # the first includes each library's set-up; the last is the steady state compared
SD1 = {"in_channels": 3, "out_channels": 3, "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
       "norm_num_groups": 32}


def run_pytorch(weights, threads, save):
    code = f"""
import sys, time, json, struct, numpy as np, torch
sys.path.insert(0, {os.path.join(HERE, '..', 'tests')!r})
from sd_vae_reference import AutoencoderKL
torch.set_num_threads({threads})
# Each tensor copied from a memory map of the file straight into the model: one copy of the weights.
raw = np.memmap({weights!r}, dtype=np.uint8, mode='r')
n = struct.unpack('<Q', raw[:8].tobytes())[0]
header = json.loads(raw[8:8 + n].tobytes())
model = AutoencoderKL({SD1!r}).eval()
with torch.no_grad():
    for k, t in model.state_dict().items():
        v = header[k]
        t.copy_(torch.from_numpy(np.frombuffer(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dtype=np.float32).reshape(v['shape'])))
del raw
z = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    for r in range({RUNS}):
        t0 = time.perf_counter(); image = model.decode(z); dec = time.perf_counter() - t0
        if r == 0: image.numpy().tofile({save!r})
        t0 = time.perf_counter(); model.encode(image.clamp(-1, 1)); enc = time.perf_counter() - t0
        print(f'run {{r}}: decode {{dec:.3f}} s, encode {{enc:.3f}} s', flush=True)
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]
print(f'peak memory {{int(hwm.split()[1]) / 1024:.0f}} MB')
"""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def parse(out):
    runs = [line for line in out.splitlines() if line.startswith("run ")]
    vals = [(float(r.split("decode ")[1].split(" s")[0]), float(r.split("encode ")[1].split(" s")[0])) for r in runs]
    peak = float(out.split("peak memory ")[1].split(" MB")[0])
    return vals, peak


def reference_kernels(sd_time, weights, threads, extra):
    """(primitives run, of which oneDNN reference kernels, their names) in one decode and encode."""
    out = subprocess.run([sd_time, "--vae", weights, "--threads", str(threads), "--runs", "1"] + extra, check=True,
                         capture_output=True, text=True, env=dict(os.environ, ONEDNN_VERBOSE="1")).stdout
    execs = [line.split(",") for line in out.splitlines() if line.startswith("onednn_verbose,exec")]
    refs = sorted({f"{e[3]} {e[4]}" for e in execs if e[4].startswith("ref")})
    return len(execs), sum(e[4].startswith("ref") for e in execs), refs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sd-time", default=os.path.join(HERE, "..", "build", "bench", "sd_time"))
    ap.add_argument("--latent", default=os.path.join(HERE, "..", "build", "latent"), help="(asked what it runs here)")
    cpu_cap.add_argument(ap)
    args = ap.parse_args()
    header = cpu_cap.header(args.cap, args.latent)
    bf16 = "bfloat16" in header[2] and "no bfloat16" not in header[2]
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "diffusion_pytorch_model.safetensors")
        model = AutoencoderKL(SD1)
        randomize(model, 1)
        save_safetensors(weights, {k: v.float() for k, v in model.state_dict().items()})
        del model
        # Both draw the latent from a fresh generator with seed 0 (the same values).
        rows = []
        pt_out = run_pytorch(weights, args.threads, os.path.join(tmp, "pytorch.bin"))
        rows.append((f"PyTorch {torch.__version__} eager fp32",) + parse(pt_out))
        reference = np.fromfile(os.path.join(tmp, "pytorch.bin"), dtype=np.float32)
        errors, refs = {}, {}
        modes = [("latent fp32", []), ("latent fp32 --winograd", ["--winograd"])]
        if bf16:
            modes.append(("latent bf16", ["--precision", "bf16"]))
        for label, extra in modes:
            save = os.path.join(tmp, "latent.bin")
            out = subprocess.run([args.sd_time, "--vae", weights, "--threads", str(args.threads), "--runs", str(RUNS), "--save", save] + extra,
                                 check=True, capture_output=True, text=True).stdout
            rows.append((label,) + parse(out))
            errors[label] = np.abs(np.fromfile(save, dtype=np.float32) - reference).max()
            refs[label] = reference_kernels(args.sd_time, weights, args.threads, extra)
    print(f"SD 1.x AutoencoderKL (random weights), 1x4x64x64 -> 512x512 -> back, {args.threads} threads")
    print("\n".join(header))
    print(f"{'':28s} {'decode 1st':>10s} {'decode':>8s} {'encode 1st':>10s} {'encode':>8s} {'peak MB':>8s} {'max |diff| vs PyTorch':>22s}")
    base = rows[0][1][-1]
    for label, vals, peak in rows:
        err = f"{errors[label]:.2e}" if label in errors else "-"
        print(f"{label:28s} {vals[0][0]:10.2f} {vals[-1][0]:8.2f} {vals[0][1]:10.2f} {vals[-1][1]:8.2f} {peak:8.0f} {err:>22s}")
    print()
    for label, vals, peak in rows[1:]:
        print(f"{label}: decode {base[0] / vals[-1][0]:.2f}x, encode {base[1] / vals[-1][1]:.2f}x PyTorch's speed (last runs); "
              f"peak {peak:.0f} MB")
    for label, (count, ref, names) in refs.items():
        print(f"{label}: {count} oneDNN primitives run, {ref} of them reference kernels" + (f" ({', '.join(names)})" if names else ""))
    if not bf16:
        print("latent bf16: not run (no bfloat16 dot products here)")


if __name__ == "__main__":
    main()
