#!/usr/bin/env bash
# End-to-end tests of `latent sd` on the small random AutoencoderKL and TAESD of tests/fixtures/sd
# (written by tests/sd_vae_reference.py with the outputs PyTorch computes for them): encode, decode
# and roundtrip against those outputs (1e-4), batches, both output kinds, and bad input.
set -uo pipefail
LATENT="$1"
F="$2"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.sh"
expect_error() {  # PHRASE CMD...: non-zero exit, no crash, PHRASE in the last stderr line
  local phrase="$1"; shift
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && tail -n 1 "$T/err" | grep -qF -- "$phrase"; then ok "error '$phrase'"; else
    fail "error '$phrase' (rc=$rc): $(tail -c 400 "$T/err")"; fi
}
close() { $PY -c "import numpy as np,sys; a=np.load('$1'); b=$2; sys.exit(0 if a.shape==b.shape and abs(a-b).max()<=1e-4 else 1)"; }
VAE="$F/diffusers_f32.safetensors"

"$LATENT" sd encode --vae "$VAE" "$F/image.npy" --mean -o "$T/z.npy" >"$T/log" 2>&1
check "encode --mean = posterior mean x scaling factor (0.5 from config.json)" close "$T/z.npy" "np.load('$F/diffusers_f32.mean.npy')*0.5"
check "encode says where the architecture came from" grep -q "from config.json" "$T/log"
"$LATENT" sd encode --vae "$VAE" "$F/image.npy" -o "$T/zs.npy" --seed 3 >/dev/null 2>&1
check "encode without --mean samples" $PY -c "import numpy as np,sys; a=np.load('$T/zs.npy'); b=np.load('$T/z.npy'); sys.exit(0 if a.shape==b.shape and abs(a-b).max()>1e-3 else 1)"
$PY -c "import numpy as np; np.save('$T/lat.npy', np.load('$F/latents.npy')*0.5)"
"$LATENT" sd decode --vae "$F/ldm_f16_first_stage.safetensors" "$T/lat.npy" -o "$T/d.npy" >/dev/null 2>&1
check "decode (LDM layout, F16) = reference" close "$T/d.npy" "np.load('$F/ldm_f16_first_stage.decoded.npy')"
"$LATENT" sd decode --vae "$VAE" "$T/lat.npy" -o "$T/d.png" >/dev/null 2>&1
check "decode writes a PNG" is_png "$T/d.png"
$PY -c "import numpy as np; z=np.load('$T/lat.npy'); np.save('$T/two.npy', np.concatenate([z, -z]))"
"$LATENT" sd decode --vae "$VAE" "$T/two.npy" -o "$T/b.png" >/dev/null 2>&1
check "decode of a batch writes one PNG per image" bash -c "[ -s '$T/b-0.png' ] && [ -s '$T/b-1.png' ] && [ ! -e '$T/b.png' ]"
"$LATENT" sd roundtrip --vae "$VAE" "$F/image.npy" -o "$T/rt.png" >"$T/rt.log" 2>&1
check "roundtrip prints PSNR" grep -Eq "PSNR [0-9.]+ dB" "$T/rt.log"
check "roundtrip writes a PNG" is_png "$T/rt.png"
"$LATENT" sd encode --vae "$VAE" "$T/rt.png" "$T/rt.png" --mean -o "$T/zz.npy" >/dev/null 2>&1
check "encode of two PNG files" [ "$($PY -c "import numpy as np; print(np.load('$T/zz.npy').shape)")" = "(2, 4, 12, 16)" ]
"$LATENT" sd encode --vae "$VAE" "$T/rt.png" --resize 16x8 --mean -o "$T/zr.npy" >/dev/null 2>&1
check "encode --resize" [ "$($PY -c "import numpy as np; print(np.load('$T/zr.npy').shape)")" = "(1, 4, 4, 8)" ]
"$LATENT" sd encode --taesd "$F/taesd/diffusion_pytorch_model.safetensors" "$F/image.npy" -o "$T/t.npy" >/dev/null 2>&1
check "--taesd encode = reference" close "$T/t.npy" "np.load('$F/taesd/latents.npy')"
"$LATENT" sd decode --vae "$VAE" "$T/lat.npy" --tile 8 --tile-overlap 0.25 -o "$T/dt.npy" >/dev/null 2>"$T/dt.err"
check "a tiled decode's progress counts tiles" grep -q "tiles" "$T/dt.err"
check "tiled decode is close to untiled" $PY -c "import numpy as np,sys; a=np.load('$T/dt.npy'); b=np.load('$T/d.npy'); sys.exit(0 if a.shape==b.shape and np.isfinite(a).all() else 1)"

# Bad input: a clear message, a non-zero exit, never a crash.
expect_error "missing.safetensors" "$LATENT" sd decode --vae "$T/missing.safetensors" "$T/lat.npy" -o "$T/x.png"
expect_error "--vae FILE or --taesd FILE" "$LATENT" sd decode "$T/lat.npy" -o "$T/x.png"
expect_error "is not a TAESD file" "$LATENT" sd decode --taesd "$VAE" "$T/lat.npy" -o "$T/x.png"
$PY -c "import numpy as np; np.save('$T/odd.npy', np.zeros((1, 3, 7, 8), np.float32)); np.save('$T/big.npy', np.full((1, 3, 8, 8), 9, np.float32))"
expect_error "multiples of 2" "$LATENT" sd encode --vae "$VAE" "$T/odd.npy" -o "$T/x.npy"
expect_error "outside [-1, 1]" "$LATENT" sd encode --vae "$VAE" "$T/big.npy" -o "$T/x.npy"
expect_error "expected [N, 4, h, w]" "$LATENT" sd decode --vae "$VAE" "$T/odd.npy" -o "$T/x.png"
expect_error "--precision" "$LATENT" sd decode --vae "$VAE" "$T/lat.npy" --precision fp16 -o "$T/x.png"
echo junk >"$T/junk.safetensors"
expect_error "junk.safetensors" "$LATENT" sd decode --vae "$T/junk.safetensors" "$T/lat.npy" -o "$T/x.png"
# A file that does not fit lists every problem (one per line after the summary).
$PY - "$VAE" "$T/cut.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
for k in ("decoder.conv_in.bias", "encoder.conv_out.bias"):  # renamed (a hole in the data would be refused earlier)
    h[k.replace("bias", "b")] = h.pop(k)
t = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(t)) + t + raw[8 + n:])
PY
"$LATENT" sd decode --vae "$T/cut.safetensors" "$T/lat.npy" -o "$T/x.png" >/dev/null 2>"$T/err"
check "a file that does not fit is refused" [ $? -eq 1 ]
check "... with the count of problems" grep -q "2 missing, 2 unexpected, 0 wrongly shaped" "$T/err"
check "... and each missing tensor" bash -c "grep -q 'missing: decoder.conv_in.bias \[64\]' '$T/err' && grep -q 'missing: encoder.conv_out.bias \[8\]' '$T/err' && grep -q 'unexpected: decoder.conv_in.b \[64\]' '$T/err'"
for cmd in encode decode roundtrip; do
  "$LATENT" sd "$cmd" --help >"$T/help" 2>&1
  check "sd $cmd --help has an example" grep -q "Example" "$T/help"
done
echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
