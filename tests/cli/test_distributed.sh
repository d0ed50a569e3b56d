#!/usr/bin/env bash
# Distributed data-parallel training (c10d/Gloo) on loopback: N ranks with a share of each batch
# give one process's numbers (elbo with the fused step and binarization, iwae, vq_vae); the same
# seed gives the same numbers again; a run resumes at another world size; torchrun starts latent
# and restarts it after a rank is killed; a killed rank is named by the others within seconds; a
# rank that never arrives and ranks that disagree are refused with one line. Skipped (77) in a
# build without c10d/Gloo.
set -uo pipefail
LATENT="$1"
T="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.sh"

"$LATENT" train --nproc 1 --out "$T/probe" --limit 0 --epochs 0 2>"$T/probe.err"
if grep -q "no distributed training" "$T/probe.err"; then echo "skipped: this build has no c10d/Gloo"; exit 77; fi

# Numbers of two runs' records agree to a relative tolerance. The references run on one thread, as
# each rank does: a thread count changes how LibTorch's products round, and over a run that alone
# moves the numbers by ~3e-5 (iwae, 1 thread against 2). Against that, N ranks differ from one
# process by the order in which the shares of each gradient are summed: ~1e-7.
same() {  # same A B TOL KEYS...
  local a="$1" b="$2" tol="$3"; shift 3
  $PY - "$a" "$b" "$tol" "$@" <<'EOF'
import json, sys
a, b, tol, keys = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
ra = [json.loads(l) for l in open(a)]
rb = [json.loads(l) for l in open(b)]
if len(ra) != len(rb): sys.exit(f"{len(ra)} vs {len(rb)} epochs")
for x, y in zip(ra, rb):
    for k in keys:
        d = abs(x[k] - y[k]) / max(1.0, abs(x[k]))
        if d > tol: sys.exit(f"epoch {x['epoch']} {k}: {x[k]} vs {y[k]} (relative {d:.2e} > {tol})")
EOF
}
M=runs
# An IWAE training run (autograd: ATen's products on each rank's share of the batch, the shares'
# gradients summed in another order) drifts from one process's loss as training amplifies the
# last-bit differences: by 5e-7 after one epoch and 4e-5 after two, on an AMD Zen 3 (AVX2) and a
# Zen 5 (AVX-512) alike (2026-12-07), so 2e-4. Evaluation and scores are bit for bit: each image is
# encoded in the same product as in one process (they once were not, and a product's rows can
# round differently with its row count).
IW_TOL=2e-4 EVAL_TOL=0 SCORE_TOL=0
MLP=(--data fashion-mnist --limit 1000 --batch-size 100 --seed 3 --quiet)
"$LATENT" train "${MLP[@]}" --epochs 2 --binarize --threads 1 --out "$T/one" >/dev/null
"$LATENT" train "${MLP[@]}" --epochs 2 --binarize --nproc 2 --threads 1 --out "$T/two" >/dev/null
"$LATENT" train "${MLP[@]}" --epochs 2 --binarize --nproc 3 --threads 1 --out "$T/three" >/dev/null
"$LATENT" train "${MLP[@]}" --epochs 2 --binarize --nproc 2 --threads 1 --out "$T/two-again" >/dev/null
check "elbo (fused step, binarized): 2 ranks give one process's numbers" same "$T/one/metrics.jsonl" "$T/two/metrics.jsonl" 1e-5 train_loss train_recon train_kl test_elbo
check "elbo: 3 ranks (shares of 34, 33, 33 rows) give one process's numbers" same "$T/one/metrics.jsonl" "$T/three/metrics.jsonl" 1e-5 train_loss test_elbo
check "the same seed gives the same numbers again, bit for bit" same "$T/two/metrics.jsonl" "$T/two-again/metrics.jsonl" 0 train_loss test_elbo
check "the records name the world size, the communication time and the bytes all-reduced" $PY -c "
import json; m = json.loads(open('$T/three/metrics.jsonl').readlines()[-1])
assert m['world_size'] == 3 and m['comm_s'] >= 0 and m['allreduce_bytes_per_step'] == 4 * 652824 + 64, m"
check "only rank 0 wrote (one checkpoint, one metrics file)" [ "$(ls "$T/three" | grep -c safetensors)" -eq 1 ]

IW=(--data fashion-mnist --limit 600 --batch-size 60 --epochs 2 --seed 5 --objective iwae --k 4 --quiet)
"$LATENT" train "${IW[@]}" --threads 1 --out "$T/iw1" >/dev/null
"$LATENT" train "${IW[@]}" --nproc 2 --threads 1 --out "$T/iw2" >/dev/null
check "iwae (autograd, overlapping buckets): 2 ranks give one process's numbers" same "$T/iw1/metrics.jsonl" "$T/iw2/metrics.jsonl" $IW_TOL train_loss test_elbo

VQ=(--data fashion-mnist --limit 400 --batch-size 50 --epochs 2 --seed 2 --config '{"type": "vq_vae", "channels": [8, 16], "codebook": 32, "code_dim": 8}' --quiet)
"$LATENT" train "${VQ[@]}" --threads 1 --out "$T/vq1" >/dev/null 2>&1
"$LATENT" train "${VQ[@]}" --nproc 2 --threads 1 --out "$T/vq2" >/dev/null 2>&1
check "vq_vae (codebook EMA over the whole batch): 2 ranks give one process's numbers" same "$T/vq1/metrics.jsonl" "$T/vq2/metrics.jsonl" 1e-4 train_loss train_recon test_recon
check "vq_vae: the code usage's perplexity too (a count of discrete choices: 1%)" same "$T/vq1/metrics.jsonl" "$T/vq2/metrics.jsonl" 1e-2 perplexity

# eval --iwae-k and score split their images over the ranks: the same numbers, bit for bit (to
# float rounding without AVX-512, above).
"$LATENT" eval "$T/one/model.safetensors" --limit 300 --iwae-k 100 --threads 1 --json >"$T/eval1.json" 2>/dev/null
"$LATENT" eval "$T/one/model.safetensors" --limit 300 --iwae-k 100 --threads 1 --json --nproc 3 >"$T/eval3.json" 2>/dev/null
check "eval --iwae-k on 3 ranks: one process's ELBO and IWAE NLL, bit for bit" $PY -c "
import json; a, b = json.load(open('$T/eval1.json')), json.load(open('$T/eval3.json'))
close = lambda x, y: abs(x - y) <= $EVAL_TOL * abs(x)
assert b['world_size'] == 3 and close(a['iwae_nll'], b['iwae_nll']) and close(a['elbo'], b['elbo']), (a['iwae_nll'], b['iwae_nll'])"
"$LATENT" score "$T/one/model.safetensors" --limit 1100 --k 10 --threads 1 --out "$T/score1" >/dev/null
"$LATENT" score "$T/one/model.safetensors" --limit 1100 --k 10 --threads 1 --nproc 2 --out "$T/score2" >/dev/null
check "score on 2 ranks (batches of 500: 1000 and 100 examples): one process's scores, bit for bit" $PY -c "
import csv; a, b = list(csv.reader(open('$T/score1/scores.csv'))), list(csv.reader(open('$T/score2/scores.csv')))
assert len(a) == len(b) == 1101 and a[0] == b[0], (len(a), len(b))
for x, y in zip(a[1:], b[1:]):
    assert x[0] == y[0] and all(abs(float(u) - float(v)) <= $SCORE_TOL * max(1.0, abs(float(u))) for u, v in zip(x[1:], y[1:])), (x, y)"

# Resume at another world size: 1 epoch on 2 ranks, the second on 3, against one process's 2 epochs.
"$LATENT" train "${MLP[@]}" --binarize --epochs 1 --nproc 2 --threads 1 --out "$T/re" >/dev/null
"$LATENT" train --resume "$T/re/model.safetensors" --epochs 2 --nproc 3 --threads 1 --quiet >/dev/null
check "a run resumed on 3 ranks after 1 epoch on 2 ends with one process's numbers" same "$T/one/metrics.jsonl" "$T/re/metrics.jsonl" 1e-5 train_loss test_elbo

# A rank that never arrives, on either side of the rendezvous; ranks that disagree.
PORT=$((20000 + RANDOM % 20000))
expect_error "waiting for rank(s) 1 of 2 to join" env WORLD_SIZE=2 RANK=0 MASTER_PORT=$PORT LATENT_DIST_JOIN_TIMEOUT=3 \
  "$LATENT" train "${MLP[@]}" --threads 1 --out "$T/alone"
expect_error "rank 0 did not answer" env WORLD_SIZE=2 RANK=1 MASTER_PORT=$((PORT + 1)) LATENT_DIST_JOIN_TIMEOUT=3 \
  "$LATENT" train "${MLP[@]}" --threads 1 --out "$T/alone1"
env WORLD_SIZE=2 RANK=1 MASTER_PORT=$((PORT + 2)) "$LATENT" train "${MLP[@]}" --threads 1 --lr 0.002 --out "$T/mis" >/dev/null 2>&1 &
expect_error "disagree on what to train (options.lr: 0.002 vs 0.001)" env WORLD_SIZE=2 RANK=0 MASTER_PORT=$((PORT + 2)) \
  "$LATENT" train "${MLP[@]}" --threads 1 --out "$T/mis"
wait
env WORLD_SIZE=2 RANK=1 MASTER_PORT=$((PORT + 6)) "$LATENT" train "${MLP[@]/1000/900}" --threads 1 --out "$T/mis" >/dev/null 2>&1 &
expect_error "disagree on what to train (data.train_bytes" env WORLD_SIZE=2 RANK=0 MASTER_PORT=$((PORT + 6)) \
  "$LATENT" train "${MLP[@]}" --threads 1 --out "$T/mis"
wait
check "nothing was written by refused jobs" [ ! -e "$T/mis/model.safetensors" ]

# A rank killed mid-epoch: the others name it and stop within seconds; the checkpoint stays whole;
# the same command again (--resume auto) continues to the uninterrupted run's numbers.
LONG=(--data fashion-mnist --limit 8000 --batch-size 100 --epochs 3 --seed 7 --threads 1 --quiet --resume auto)
"$LATENT" train "${LONG[@]}" --nproc 3 --out "$T/kill" >"$T/kill.out" 2>"$T/kill.err" &
job=$!
for _ in $(seq 600); do [ -s "$T/kill/metrics.jsonl" ] && break; sleep 0.05; done  # epoch 1 done
sleep 0.3
victim=$(pgrep -f "latent train .*--out $T/kill" | while read -r p; do
  [ "$(tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -x RANK=1)" ] && echo "$p"; done | head -1)
kill -9 "$victim"
start=$(date +%s.%N)
wait $job
rc=$?
took=$($PY -c "print($(date +%s.%N) - $start)")
echo "the job ended ${took} s after rank 1 was killed (rc $rc): $(grep 'was lost' "$T/kill.err" | head -1)"
check "the job fails when a rank is killed" [ "$rc" -ne 0 ]
check "the others name the lost rank" grep -q "rank 1 of 3 .*was lost" "$T/kill.err"
check "they stop within 10 s" $PY -c "assert $took < 10"
check "the checkpoint left loads" "$LATENT" eval "$T/kill/model.safetensors" --limit 20 --iwae-k 0 --json
"$LATENT" train "${LONG[@]}" --nproc 3 --out "$T/kill" >/dev/null 2>"$T/kill2.err"
check "the same command resumes and finishes" grep -q "resuming from" "$T/kill2.err"
"$LATENT" train "${LONG[@]}" --nproc 3 --out "$T/nokill" >/dev/null 2>&1
check "the killed and resumed job ends with the uninterrupted job's numbers, bit for bit" same "$T/nokill/metrics.jsonl" "$T/kill/metrics.jsonl" 0 train_loss test_elbo

# Rank 0 killed: it hosted the rendezvous, whose loss the others see at once.
"$LATENT" train "${LONG[@]}" --nproc 3 --out "$T/kill0" >/dev/null 2>"$T/kill0.err" &
job=$!
for _ in $(seq 600); do [ -s "$T/kill0/metrics.jsonl" ] && break; sleep 0.05; done
victim=$(pgrep -f "latent train .*--out $T/kill0" | while read -r p; do
  [ "$(tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -x RANK=0)" ] && echo "$p"; done | head -1)
kill -9 "$victim"
start=$(date +%s.%N)
wait $job
took=$($PY -c "print($(date +%s.%N) - $start)")
check "rank 0 killed: the others name it and stop within 10 s (${took} s)" \
  bash -c "grep -q 'rank 0 of 3 .*was lost' '$T/kill0.err' && $PY -c 'assert $took < 10'"

# Ctrl-C to a --nproc job reaches each rank once: all stop at the same step, rank 0 saves, 130.
"$LATENT" train "${LONG[@]}" --nproc 2 --out "$T/nokill2" >/dev/null 2>&1
"$LATENT" train "${LONG[@]}" --nproc 2 --out "$T/int" >/dev/null 2>"$T/int.err" &
job=$!
for _ in $(seq 600); do [ -s "$T/int/metrics.jsonl" ] && break; sleep 0.05; done
kill -INT $job
wait $job
rc=$?
check "Ctrl-C: the job exits with 130 (rc $rc) after rank 0 saved its checkpoint" \
  bash -c "[ $rc -eq 130 ] && grep -q 'interrupted: checkpoint saved' '$T/int.err'"
"$LATENT" train "${LONG[@]}" --nproc 2 --out "$T/int" >/dev/null 2>&1
check "the interrupted job, run again, ends with the uninterrupted job's numbers, bit for bit" same "$T/nokill2/metrics.jsonl" "$T/int/metrics.jsonl" 0 train_loss test_elbo

# torchrun starts latent like any program, and its --max_restarts restarts the job after a kill.
# (Debian's python3-torch 1.13 on Python 3.11 cannot parse torchrun's default "--redirects 0":
# a mapping that names no local rank means the same.)
if $PY -c "import torch.distributed.run" 2>/dev/null; then
  torchrun() { $PY -m torch.distributed.run --redirects 9:1 --tee 9:1 --nnodes 1 --nproc_per_node 2 "$@"; }
  torchrun --master_port $((PORT + 3)) --no_python "$LATENT" train "${MLP[@]}" --epochs 2 --binarize --threads 1 --out "$T/tr" >/dev/null 2>"$T/tr.err"
  check "torchrun runs a 2-rank job with one process's numbers" same "$T/one/metrics.jsonl" "$T/tr/metrics.jsonl" 1e-5 train_loss test_elbo
  torchrun --master_port $((PORT + 4)) --max_restarts 2 --no_python "$LATENT" train "${LONG[@]}" --out "$T/trk" >/dev/null 2>"$T/trk.err" &
  job=$!
  for _ in $(seq 600); do [ -s "$T/trk/metrics.jsonl" ] && break; sleep 0.05; done
  sleep 0.3
  victim=$(pgrep -f "latent train .*--out $T/trk" | while read -r p; do
    [ "$(tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -x RANK=1)" ] && echo "$p"; done | head -1)
  kill -9 "$victim"
  wait $job
  check "torchrun --max_restarts: the job restarts after a kill and finishes" [ $? -eq 0 ]
  check "the restarted job ends with the uninterrupted job's numbers" same "$T/nokill2/metrics.jsonl" "$T/trk/metrics.jsonl" 0 train_loss test_elbo
else
  echo "skipped: torchrun (Debian's python3-torch) is not installed"
fi

# Two hosts: network namespaces joined by a veth pair, made here (traffic only between them);
# rank 0 finds its address from the route to MASTER_ADDR, rank 1 is told its interface (--iface).
NA=latent_a_$$ NB=latent_b_$$
if ip netns add $NA 2>/dev/null; then
  trap 'kill $(jobs -p) 2>/dev/null; ip netns del $NA 2>/dev/null; ip netns del $NB 2>/dev/null; rm -rf "$T"' EXIT
  ip netns add $NB && ip link add va$$ netns $NA type veth peer name vb$$ netns $NB &&
    ip -n $NA addr add 10.77.0.1/24 dev va$$ && ip -n $NB addr add 10.77.0.2/24 dev vb$$ &&
    ip -n $NA link set va$$ up && ip -n $NB link set vb$$ up && ip -n $NA link set lo up && ip -n $NB link set lo up
  NS_ENV=(env WORLD_SIZE=2 MASTER_ADDR=10.77.0.1 MASTER_PORT=$((PORT + 5)))
  ip netns exec $NB "${NS_ENV[@]}" RANK=1 "$LATENT" train "${MLP[@]}" --epochs 2 --binarize --threads 1 --iface vb$$ \
    --out "$T/ns" >/dev/null 2>"$T/ns1.err" &
  ip netns exec $NA "${NS_ENV[@]}" RANK=0 "$LATENT" train "${MLP[@]}" --epochs 2 --binarize --threads 1 --out "$T/ns" \
    >/dev/null 2>"$T/ns0.err"
  rc0=$?
  wait
  check "two network namespaces (veth): the job runs (rank 0 rc $rc0: $(head -c 200 "$T/ns0.err"))" [ $rc0 -eq 0 ]
  check "two network namespaces: one process's numbers" same "$T/one/metrics.jsonl" "$T/ns/metrics.jsonl" 1e-5 train_loss test_elbo
else
  echo "skipped: network namespaces (ip netns add needs CAP_SYS_ADMIN here)"
fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
