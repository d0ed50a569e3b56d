#!/usr/bin/env bash
# End-to-end tests of the latent command: a short training run on Fashion-MNIST that must beat a
# stated test-ELBO threshold, every subcommand on its output, resume, Ctrl-C, and bad input
# (one line on stderr, non-zero exit, never a crash).
set -uo pipefail
LATENT="$1"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.sh"

json_get() { $PY -c "import json,sys; d=json.load(open('$1')); print(eval('d'+sys.argv[1]))" "$2"; }

# --- training on 5,000 Fashion-MNIST images, 5 epochs ----------------------------------------
# Threshold: test ELBO > -290 nats. An untrained model scores about -545 (784 ln 2); this run
# measured -278.0 on the development machine (seed 1).
"$LATENT" train --data fashion-mnist --limit 5000 --epochs 5 --batch-size 128 --seed 1 --out "$T/run" 2>"$T/train.log"
check "train exits 0" [ $? -eq 0 ]
for f in model.safetensors metrics.jsonl samples.png reconstructions.png; do check "train wrote $f" [ -s "$T/run/$f" ]; done
check "samples.png is a PNG" is_png "$T/run/samples.png"
check "progress bar shows rate" grep -q "samples/s" "$T/train.log"
check "metrics has 5 epochs" [ "$(wc -l <"$T/run/metrics.jsonl")" -eq 5 ]
elbo=$(tail -1 "$T/run/metrics.jsonl" | $PY -c "import json,sys; print(json.load(sys.stdin)['test_elbo'])")
echo "test ELBO after 5 epochs on 5000 images: $elbo"
check "test ELBO $elbo > -290" $PY -c "import sys; sys.exit(0 if $elbo > -290 else 1)"
check "metrics record samples/s" grep -q samples_per_s "$T/run/metrics.jsonl"

# --- eval -------------------------------------------------------------------------------------
"$LATENT" eval "$T/run/model.safetensors" --iwae-k 200 --limit 300 --json >"$T/eval.json" 2>"$T/eval.err"
check "eval exits 0" [ $? -eq 0 ]
check "eval JSON has the IWAE NLL" [ "$(json_get "$T/eval.json" "['iwae_k']")" = "200" ]
# The IWAE estimate is a tighter bound: NLL_k <= -ELBO (up to Monte-Carlo noise, 1 nat here).
check "IWAE NLL <= -ELBO" $PY -c "
import json; d=json.load(open('$T/eval.json')); import sys; sys.exit(0 if d['iwae_nll'] <= -d['elbo'] + 1 and d['iwae_nll'] > 100 else 1)"
check "eval reports active units" [ "$(json_get "$T/eval.json" "['active_units']")" -ge 1 ]
# The default precision (bf16x3 on CPUs with AMX, else fp32) gives float32's estimate to 1e-4 nats.
"$LATENT" eval "$T/run/model.safetensors" --iwae-k 200 --limit 300 --json --precision fp32 >"$T/eval32.json" 2>/dev/null
check "eval names its precision, and fp32 agrees with it" $PY -c "
import json; a=json.load(open('$T/eval.json')); b=json.load(open('$T/eval32.json')); import sys
sys.exit(0 if a['iwae_precision'] in ('fp32', 'bf16x3') and b['iwae_precision'] == 'fp32' and abs(a['iwae_nll'] - b['iwae_nll']) < 1e-4 else 1)"
expect_error "precision" "$LATENT" eval "$T/run/model.safetensors" --precision fp16
# Options a hostile or careless user gives: one line, the bound in plain numbers, nothing written.
expect_error "--temperature: must be a non-negative finite number, got 'nan'" "$LATENT" sample "$T/run/model.safetensors" --temperature nan -o "$T/x.png"
expect_error "--epochs: must be a non-negative finite number, got '-1'" "$LATENT" train --epochs -1 --out "$T/x"
expect_error "--beta: must be a non-negative finite number, got 'nan'" "$LATENT" train --beta nan --limit 100 --out "$T/x"
expect_error "--epochs must be at least 1 for a new run" "$LATENT" train --epochs 0 --limit 100 --out "$T/e0"
check "train --epochs 0 wrote nothing" [ ! -e "$T/e0/model.safetensors" ]
expect_error "--threads 100000: must be 0 (every core) to" "$LATENT" eval "$T/run/model.safetensors" --threads 100000
$PY -c "import numpy as np; np.save('$T/z-none.npy', np.zeros((0, 20), np.float32))"
expect_error "z-none.npy: holds no codes" "$LATENT" decode "$T/run/model.safetensors" "$T/z-none.npy" -o "$T/x.png"
mkfifo "$T/fifo.safetensors"
expect_error "not a regular file" timeout 20 "$LATENT" eval "$T/fifo.safetensors"
check "eval names the CPU path it ran" $PY -c "
import json; c=json.load(open('$T/eval.json'))['cpu']; import sys
sys.exit(0 if c['kernels'] in ('portable', 'avx2', 'avx512') and 'bf16' in c and 'amx' in c else 1)"
BF16=$(json_get "$T/eval.json" "['cpu']['bf16']")
# Every kernel level gives the same estimate (the noise is the same; float32 sums in other orders):
# the split decoder on AVX-512 and AVX2, the packed oneDNN decoder on the portable kernels.
for cap in avx2 portable; do
  LATENT_MAX_CPU_ISA=$cap "$LATENT" eval "$T/run/model.safetensors" --iwae-k 200 --limit 300 --json --precision auto >"$T/eval-$cap.json" 2>/dev/null
  check "eval capped at $cap runs there and agrees with fp32 (1e-4 nats)" $PY -c "
import json; a=json.load(open('$T/eval-$cap.json')); b=json.load(open('$T/eval32.json')); import sys
c=a['cpu']; ok = c['cap'] == '$cap' and not c['bf16'] and a['iwae_precision'] == 'fp32' and abs(a['iwae_nll'] - b['iwae_nll']) < 1e-4
can = '$cap' in c['built'] and ' avx2' in open('/proc/cpuinfo').read()
ok = ok and (c['kernels'] == '$cap' if can else c['kernels'] == 'portable')
sys.exit(0 if ok else 1)"
done
expect_error "LATENT_MAX_CPU_ISA='sse9' is not a level" env LATENT_MAX_CPU_ISA=sse9 "$LATENT" eval "$T/run/model.safetensors" --iwae-k 0

# --- sample, reconstruct, interpolate, encode, decode ------------------------------------------
C="$T/run/model.safetensors"
"$LATENT" sample "$C" -n 16 -o "$T/s.png" --npy "$T/s.npy" >/dev/null && check "sample PNG" is_png "$T/s.png"
check "sample NPY shape" [ "$($PY -c "import numpy as np; print(np.load('$T/s.npy').shape)")" = "(16, 1, 28, 28)" ]
"$LATENT" reconstruct "$C" -n 8 -o "$T/r.png" >/dev/null && check "reconstruct PNG" is_png "$T/r.png"
"$LATENT" interpolate "$C" --from 0 --to 1 --steps 7 --method slerp -o "$T/i.png" --npy "$T/i.npy" >/dev/null && check "interpolate PNG" is_png "$T/i.png"
"$LATENT" interpolate "$C" --from "$T/run/samples.png" --to 3 --steps 4 -o "$T/i2.png" >/dev/null 2>&1
check "interpolate from an image file" is_png "$T/i2.png"
"$LATENT" encode "$C" --limit 10 -o "$T/codes.npy" >/dev/null
check "encode NPY shape" [ "$($PY -c "import numpy as np; print(np.load('$T/codes.npy').shape)")" = "(10, 2, 20)" ]
"$LATENT" decode "$C" "$T/codes.npy" -o "$T/d.png" >/dev/null && check "decode PNG" is_png "$T/d.png"

# --- the checkpoint in PyTorch: spec reader, load_state_dict(strict=True), same encoder output ---
FMNIST="${LATENT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
check "checkpoint loads into the PyTorch module by name" $PY "$(dirname "$0")/pytorch_interop.py" "$C" "$T/codes.npy" "$FMNIST/t10k-images-idx3-ubyte.gz" 10

# --- conv_vae on an RGB image folder (two classes from sub-folders, resized to 16x16) --------
$PY - "$T/rgb" <<'PYEOF'
import sys, zlib, struct, os
import numpy as np
def png(path, img):  # img: HxWx3 uint8
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
rng = np.random.default_rng(0)
for cls, colour in (("red", (220, 40, 40)), ("blue", (40, 40, 220))):
    os.makedirs(os.path.join(sys.argv[1], cls), exist_ok=True)
    for i in range(40):
        img = (rng.random((20, 20, 1)) * 60).astype(np.uint8) + np.array(colour, np.uint8) // 2
        png(os.path.join(sys.argv[1], cls, f"{i}.png"), img)
PYEOF
"$LATENT" train --data "$T/rgb" --resize 16x16 --channels 3 --config '{"type": "conv_vae", "channels": [8, 16], "latent": 4}' \
  --epochs 2 --batch-size 16 --out "$T/conv" --quiet >/dev/null 2>&1
check "conv_vae trains on an RGB image folder" [ -s "$T/conv/model.safetensors" ]
"$LATENT" sample "$T/conv/model.safetensors" -n 4 --npy "$T/conv.npy" >/dev/null
check "conv_vae samples are RGB 16x16" [ "$($PY -c "import numpy as np; print(np.load('$T/conv.npy').shape)")" = "(4, 3, 16, 16)" ]
check "conv_vae checkpoint keeps the class names" $PY -c "
import json, struct; raw = open('$T/conv/model.safetensors', 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
assert json.loads(json.loads(raw[8:8 + n])['__metadata__']['classes']) == ['blue', 'red']"

# --- IWAE objective and free bits from the command line ---------------------------------------
"$LATENT" train --limit 2000 --epochs 1 --objective iwae --k 5 --binarize --out "$T/iw" --quiet >/dev/null 2>&1
check "train --objective iwae --k 5" grep -q '"objective":"iwae"' "$T/iw/metrics.jsonl"
"$LATENT" train --limit 2000 --epochs 1 --free-bits 0.25 --kl-cycle 1 --out "$T/fb" --quiet >/dev/null 2>&1
check "train --free-bits --kl-cycle" [ -s "$T/fb/model.safetensors" ]
# Mixed precision (bfloat16 products) where the CPU has bfloat16 dot products (eval's JSON said); a
# one-line error naming what is missing elsewhere, and always when capped below them.
if [ "$BF16" = "True" ]; then
  "$LATENT" train --limit 2000 --epochs 2 --precision bf16 --out "$T/bf" --quiet >/dev/null 2>&1
  "$LATENT" train --limit 2000 --epochs 2 --out "$T/bf32" --quiet >/dev/null 2>&1
  check "train --precision bf16 learns as fp32 does (test ELBO within 3 nats)" $PY -c "
import json; m=[json.loads(l) for l in open('$T/bf/metrics.jsonl')]; f=[json.loads(l) for l in open('$T/bf32/metrics.jsonl')]
import sys; sys.exit(0 if abs(m[-1]['test_elbo'] - f[-1]['test_elbo']) < 3 and m[-1]['precision'] == 'bf16' else 1)"
else
  expect_error "needs bfloat16 dot products (AVX512-BF16 or AMX)" "$LATENT" train --limit 2000 --epochs 2 --precision bf16 --out "$T/bf"
fi
expect_error "needs bfloat16 dot products (AVX512-BF16 or AMX)" env LATENT_MAX_CPU_ISA=avx512 "$LATENT" train --limit 100 --precision bf16 --out "$T/bf"
check "training metrics name the CPU path" $PY -c "
import json; m=json.loads(open('$T/fb/metrics.jsonl').readline()); assert m['cpu']['kernels'] in ('portable', 'avx2', 'avx512'), m"
expect_error "applies to the fused step only" "$LATENT" train --limit 100 --precision bf16 --free-bits 0.5 --out "$T/x"

# --- VQ-VAE: EMA codebook, code statistics per epoch, prior sampling, resume ----------------------
VQ='{"type": "vq_vae", "channels": [16, 32], "codebook": 64, "code_dim": 16}'
"$LATENT" train --limit 4000 --epochs 2 --binarize --config "$VQ" --seed 3 --out "$T/vq" 2>"$T/vq.log"
check "vq_vae trains" [ -s "$T/vq/model.safetensors" ]
check "vq_vae starts its codebook with k-means" grep -q "k-means" "$T/vq.log"
check "vq_vae reports usage, perplexity and its priors' NLL" $PY -c "
import json; m = [json.loads(l) for l in open('$T/vq/metrics.jsonl')]; last = m[-1]
assert len(m) == 2 and last['objective'] == 'vq', m
assert last['test_codebook_usage'] > 0.5 and last['test_perplexity'] > 16, last  # most of 64 codes in use
assert last['test_recon'] < m[0]['test_recon'] and last['test_recon'] < 300, m  # nats, binarized; measured 270
assert last['prior_test_nll_autoregressive'] < last['prior_test_nll_categorical'], last"
for f in samples.png reconstructions.png; do check "vq_vae wrote $f" [ -s "$T/vq/$f" ]; done
"$LATENT" sample "$T/vq/model.safetensors" -n 6 --npy "$T/vq.npy" -o "$T/vq-samples.png" >/dev/null
check "vq_vae samples from its prior" [ "$($PY -c "import numpy as np; x = np.load('$T/vq.npy'); print(x.shape, bool(x.std(0).mean() > 0.01))")" = "(6, 1, 28, 28) True" ]
"$LATENT" reconstruct "$T/vq/model.safetensors" -n 8 -o "$T/vq-recon.png" >/dev/null
check "vq_vae reconstructs" [ -s "$T/vq-recon.png" ]
"$LATENT" eval "$T/vq/model.safetensors" --limit 500 --json >"$T/vq-eval.json"
check "vq_vae eval gives perplexity" $PY -c "import json; j = json.load(open('$T/vq-eval.json')); assert j['perplexity'] > 1 and j['examples'] == 500, j"
expect_error "applies to VAEs" "$LATENT" interpolate "$T/vq/model.safetensors" --from 0 --to 1 -o "$T/x.png"
expect_error "commitment" "$LATENT" train --limit 100 --config "$VQ" --beta 2 --out "$T/x"
"$LATENT" train --limit 4000 --epochs 1 --binarize --config "$VQ" --seed 3 --out "$T/vq1" --quiet >/dev/null 2>&1
"$LATENT" train --resume "$T/vq1/model.safetensors" --epochs 2 --quiet >/dev/null 2>&1
check "vq_vae resumed gives the uninterrupted run's metrics" $PY -c "
import json; a = [json.loads(l) for l in open('$T/vq/metrics.jsonl')]; b = [json.loads(l) for l in open('$T/vq1/metrics.jsonl')]
keys = ['train_loss', 'test_recon', 'perplexity', 'restarts']
assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b], (a, b)"

# --- anomaly scores: calibration, flags, ROC / PR reports, tables of mixed scales ------------------
cp "$C" "$T/anom.safetensors"
"$LATENT" calibrate "$T/anom.safetensors" --limit 1000 --fpr 0.05 >"$T/cal.out"
check "calibrate reports its threshold" grep -q "threshold" "$T/cal.out"
"$LATENT" score "$T/anom.safetensors" --limit 1000 --normal-class 0 --k 20 --maps --out "$T/score" >"$T/score.out"
for f in scores.csv scores.npy report.json roc.png pr.png error_maps.png error_maps.npy roc_neg_elbo.csv pr_mahalanobis.csv; do
  check "score wrote $f" [ -s "$T/score/$f" ]
done
check "score flags at most the calibrated FPR of the calibration data" $PY -c "
import csv; rows = list(csv.DictReader(open('$T/score/scores.csv')))
assert len(rows) == 1000 and set(rows[0]) >= {'neg_elbo', 'iwae_nll', 'recon_error', 'prior_nll', 'mahalanobis', 'flagged', 'tail_probability'}, rows[0]
flagged = sum(int(r['flagged']) for r in rows) / len(rows)
assert 0.03 <= flagged <= 0.05, flagged
assert all(0 < float(r['tail_probability']) <= 1 for r in rows)"
check "score reports AUROC and the calibrated threshold's F1" $PY -c "
import json; r = json.load(open('$T/score/report.json'))
assert r['examples'] == 1000 and 800 < r['anomalies'] < 950, r
assert set(r['scores']) == {'neg_elbo', 'iwae_nll', 'recon_error', 'prior_nll', 'mahalanobis', 'combined', 'complexity_adjusted'}, r
assert all(0 <= s['auroc'] <= 1 and 0 < s['auprc'] <= 1 for s in r['scores'].values()), r
assert 'f1' in r['scores']['neg_elbo']['at_threshold']
import csv; rows = list(csv.DictReader(open('$T/score/scores.csv')))  # AUROC by counting ordered pairs
pos = [float(x['mahalanobis']) for x in rows if x['label'] == '1']; neg = [float(x['mahalanobis']) for x in rows if x['label'] == '0']
auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
assert abs(auc - r['scores']['mahalanobis']['auroc']) < 1e-4, (auc, r['scores']['mahalanobis'])"
check "score prints the table" grep -q "AUROC" "$T/score.out"
check "eval still reads the calibrated checkpoint" "$LATENT" eval "$T/anom.safetensors" --limit 100 --iwae-k 0 --json
expect_error "unknown score" "$LATENT" calibrate "$T/anom.safetensors" --score nope
expect_error "--fpr must be in (0, 1)" "$LATENT" calibrate "$T/anom.safetensors" --limit 100 --fpr 1.5
$PY -c "import numpy as np; np.save('$T/few-labels.npy', np.zeros(7, np.int64))"
expect_error "has 7 labels for 100 examples" "$LATENT" score "$T/anom.safetensors" --limit 100 --labels "$T/few-labels.npy" --out "$T/x"
# A table whose columns differ in scale by 1e4; anomalies shift two columns by 4 of their own sds.
$PY - "$T" <<'PYEOF'
import numpy as np, sys
rng = np.random.default_rng(0); scale = np.array([1e-2, 1, 1e2, 1e-1, 10, 1e3])
def rows(n): z = rng.standard_normal((n, 2)); return np.c_[z, z @ [[1, .5], [.3, 1]], rng.standard_normal((n, 2))] * scale
normal, test = rows(2000), rows(400); lab = np.zeros(400, int); lab[:40] = 1; test[:40, 4:] += 4 * scale[4:]
np.savetxt(sys.argv[1] + "/mixed.csv", normal, delimiter=",", header="a,b,c,d,e,f", comments="")
np.savetxt(sys.argv[1] + "/mixed-test.csv", test, delimiter=",", header="a,b,c,d,e,f", comments="")
np.savetxt(sys.argv[1] + "/mixed-labels.txt", lab, fmt="%d")
PYEOF
"$LATENT" train --data "$T/mixed.csv" --test-data "$T/mixed-test.csv" --standardize \
  --config '{"type": "mlp_vae", "hidden": [32], "latent": 2, "likelihood": "gaussian", "sigma": 0.3}' --epochs 30 --quiet --out "$T/mixed" >/dev/null 2>&1
"$LATENT" score "$T/mixed/model.safetensors" --labels "$T/mixed-labels.txt" --out "$T/mixed-score" >/dev/null
"$LATENT" score "$T/mixed/model.safetensors" "$T/mixed-test.csv" --labels "$T/mixed-labels.txt" --out "$T/mixed-score2" >/dev/null
check "score CHECKPOINT DATA scores every row of the file, in order" cmp "$T/mixed-score/scores.csv" "$T/mixed-score2/scores.csv"
check "tabular anomalies of mixed scales are found without tuning (AUROC > 0.9)" $PY -c "
import json; r = json.load(open('$T/mixed-score/report.json'))['scores']
assert max(s['auroc'] for s in r.values()) > 0.9, r"

# --- resume -----------------------------------------------------------------------------------
"$LATENT" train --resume "$C" --epochs 6 --quiet >/dev/null 2>&1
check "resume adds an epoch" [ "$(wc -l <"$T/run/metrics.jsonl")" -eq 6 ]

# --- Ctrl-C saves a checkpoint and exits cleanly ------------------------------------------------
"$LATENT" train --limit 20000 --epochs 100 --out "$T/int" --quiet 2>"$T/int.err" &
pid=$!
for _ in $(seq 1 100); do [ -s "$T/int/metrics.jsonl" ] && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid"
rc=$?
check "Ctrl-C exits with 130" [ "$rc" -eq 130 ]
check "Ctrl-C says where the checkpoint is" grep -q "interrupted: checkpoint saved" "$T/int.err"
"$LATENT" eval "$T/int/model.safetensors" --iwae-k 0 --limit 10 >/dev/null 2>&1
check "interrupted checkpoint loads" [ $? -eq 0 ]

# A storm of signals during training (each one handled off the compute threads): the first
# stops and saves, the process ends with 130 and never crashes. Before the signal thread, a
# handler running on a oneDNN kernel's stack corrupted the heap in every such run.
"$LATENT" train --limit 20000 --epochs 100 --out "$T/storm" --quiet 2>"$T/storm.err" &
pid=$!
for _ in $(seq 1 100); do [ -s "$T/storm/metrics.jsonl" ] && break; sleep 0.1; done
for _ in $(seq 1 5); do kill -INT "$pid" 2>/dev/null; sleep 0.02; done
wait "$pid"
rc=$?
check "signal storm: clean exit 130 (got $rc)" [ "$rc" -eq 130 ]
"$LATENT" eval "$T/storm/model.safetensors" --iwae-k 0 --limit 10 >/dev/null 2>&1
check "signal storm: checkpoint loads" [ $? -eq 0 ]

# --- bad input: one line, non-zero exit ----------------------------------------------------------
expect_error "no such file" "$LATENT" train --data "$T/missing.npy" --out "$T/x"
expect_error "unknown key 'hiden'" "$LATENT" train --config '{"type": "mlp_vae", "hiden": [4], "latent": 2}' --out "$T/x"
expect_error "--out is required" "$LATENT" train --epochs 1
head -c 5000 "$C" >"$T/cut.safetensors"
expect_error "not a valid safetensors file" "$LATENT" eval "$T/cut.safetensors"
echo "not json" >"$T/garbage.safetensors"
expect_error "not a valid safetensors file" "$LATENT" eval "$T/garbage.safetensors"
$PY -c "import numpy as np; np.save('$T/z3.npy', np.zeros((2, 3), np.float32))"
expect_error "expected codes of shape [N, 20]" "$LATENT" decode "$C" "$T/z3.npy" -o "$T/x.png"
$PY -c "import numpy as np; np.save('$T/znan.npy', np.full((2, 20), np.nan, np.float32))"
expect_error "NaN" "$LATENT" decode "$C" "$T/znan.npy" -o "$T/x.png"
expect_error "out of range" "$LATENT" interpolate "$C" --from 0 --to 999999 -o "$T/x.png"
echo "junk" >"$T/junk.png"
expect_error "junk.png" "$LATENT" encode "$C" "$T/junk.png" -o "$T/x.npy"
expect_error "latent --help" "$LATENT" frobnicate
expect_error "--iwae-k" "$LATENT" eval "$C" --iwae-k -3
expect_error "do not apply to --objective iwae" "$LATENT" train --objective iwae --beta 4 --out "$T/x"
expect_error "does not exist" "$LATENT" serve "$T/missing.safetensors"
expect_error "--port" "$LATENT" serve "$C" --port 70000
expect_error "--precision" "$LATENT" serve "$C" --precision fp16
$PY -c "import numpy as np; np.save('$T/table.npy', np.random.rand(300, 6).astype(np.float32))"
"$LATENT" train --data "$T/table.npy" --config '{"type": "mlp_vae", "hidden": [8], "latent": 2, "likelihood": "gaussian"}' \
  --epochs 1 --quiet --out "$T/table" >/dev/null 2>&1
expect_error "the explorer shows image models" "$LATENT" serve "$T/table/model.safetensors" --port 0
# The explorer answers from any folder: its page is inside the binary.
(cd / && exec "$LATENT" serve "$C" --port 0 >"$T/serve.log" 2>&1) &
serve_pid=$!
for _ in $(seq 100); do grep -q "http://" "$T/serve.log" && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$T/serve.log" | head -1)"
check "serve prints its address" [ -n "$url" ]
check "serve says how it decodes" grep -Eq "(fp32|bf16) decoding" "$T/serve.log"
check "serve answers the page from another folder" bash -c "$PY -c \"import urllib.request,sys; sys.exit(0 if b'latent explorer' in urllib.request.urlopen('$url').read() else 1)\""
kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null
for cmd in train eval sample reconstruct interpolate encode decode serve; do
  "$LATENT" "$cmd" --help >"$T/help" 2>&1
  check "$cmd --help has an example" grep -q "Example" "$T/help"
done

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
