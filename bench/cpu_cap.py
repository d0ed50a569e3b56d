"""The CPU a benchmark runs on, what each side runs there, and the cap both sides run under.

`--cap avx2` runs latent and its PyTorch reference as on a CPU without AVX-512 or bfloat16, both
under the same caps: latent's kernels and oneDNN's (LATENT_MAX_CPU_ISA=avx2, which latent also gives
oneDNN; ONEDNN_MAX_CPU_ISA=AVX2 for PyTorch's oneDNN), ATen's (ATEN_CPU_CAPABILITY=avx2) and
OpenBLAS's (OPENBLAS_CORETYPE=Haswell). The libraries read them when they start, so
apply_from_argv() sets them and re-executes the benchmark before it imports torch; every process it
starts inherits them.
"""
import ctypes
import json
import os
import subprocess
import sys

CAPS = {
    "native": {},
    "avx2": {"LATENT_MAX_CPU_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "OPENBLAS_CORETYPE": "Haswell"},
}


def add_argument(ap):
    ap.add_argument("--cap", choices=sorted(CAPS), default="native",
                    help="run both sides as on a smaller CPU (avx2: no AVX-512, no bfloat16); default: this CPU as it is")


def apply_from_argv():
    """Re-executes this script with the variables of its --cap set, unless they are set already: call
    it before importing torch (ATen and OpenBLAS read theirs when they load)."""
    import argparse
    ap = argparse.ArgumentParser(add_help=False)
    add_argument(ap)
    cap = ap.parse_known_args()[0].cap
    want = CAPS[cap]
    if all(os.environ.get(k) == v for k, v in want.items()):
        return
    env = dict(os.environ, **want)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def cpu_line():
    """"AMD EPYC (2 CPUs; avx2, avx512f, avx512_bf16)": the model and its vector units, from /proc/cpuinfo."""
    model, flags = "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    units = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({os.cpu_count()} CPUs; {', '.join(units) or 'no AVX2'})"


def pytorch_line():
    """What PyTorch runs here under the current variables: ATen's vector level, OpenBLAS's kernels and
    oneDNN's ISA (from its own verbose report of a first primitive)."""
    code = r"""
import ctypes, torch
aten = [l.split(':', 1)[1].strip() for l in torch.__config__.show().splitlines() if 'CPU capability usage' in l]
blas = 'unknown'
for name in ('libopenblas.so.0', 'libopenblasp.so.0'):
    try:
        f = ctypes.CDLL(name).openblas_get_corename; f.restype = ctypes.c_char_p; blas = f().decode(); break
    except OSError:
        pass
torch.zeros(1, 16, 8, 8).to_mkldnn()
print(f"ATen {aten[0] if aten else 'unknown'}, OpenBLAS {blas}", flush=True)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, ONEDNN_VERBOSE="1")).stdout
    isa = [l.split("isa:", 1)[1].strip() for l in out.splitlines() if "isa:" in l]
    main = [l for l in out.splitlines() if l.startswith("ATen")]
    return f"{main[0] if main else 'PyTorch: unknown'}, oneDNN {isa[0] if isa else 'unknown'}"


def latent_line(binary):
    """What latent runs here under the current variables (latent info)."""
    try:
        info = json.loads(subprocess.run([binary, "info", "--json"], capture_output=True, text=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return "latent: unknown (no `latent info`)"
    c = info["cpu"]
    bf16 = "bfloat16 on AMX" if c["amx"] else "bfloat16 dot products" if c["bf16"] else "no bfloat16"
    return f"kernels {c['kernels']}, oneDNN {c['onednn']}, {bf16}"


def header(cap, latent_binary):
    """Lines naming the CPU, the cap and what each side runs."""
    caps = " ".join(f"{k}={v}" for k, v in CAPS[cap].items()) or "none"
    return [f"CPU: {cpu_line()}", f"cap: {cap} ({caps})", f"latent: {latent_line(latent_binary)}",
            f"PyTorch: {pytorch_line()}"]
