#!/usr/bin/env bash
# The molecule commands end to end, as a user runs them: a short smiles_vae run on the built-in pool,
# sample to .smi, eval's MOSES metrics, a drawn walk, optimization, user files, and bad input.
#   test_molecules_cli.sh LATENT_BINARY
set -uo pipefail
L=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export LATENT_CACHE_DIR=$T/cache OMP_NUM_THREADS=1
"$L" info 2>/dev/null | grep -q "rdkit: no" && { echo "skipped: this latent was built without RDKit"; exit 77; }
TINY='{"type": "smiles_vae", "latent": 8, "embedding": 16, "encoder_hidden": 32, "decoder_hidden": 48, "decoder_layers": 2}'

"$L" train --data molecules --config "$TINY" --epochs 2 --limit 400 --batch-size 50 --threads 2 --quiet --out "$T/m" \
  >"$T/train.out" 2>"$T/train.err"
check "train on the built-in pool" [ -s "$T/m/model.safetensors" ]
check "family defaults said" grep -q "smiles_vae defaults: --kl-warmup 5 --free-bits 0.2" "$T/train.out"
check "two epochs of molecule metrics" $PY -c "
import json
rows = [json.loads(l) for l in open('$T/m/metrics.jsonl')]
assert len(rows) == 2, rows
for k in ('test_token_accuracy', 'test_reconstruction', 'prior_validity', 'active_units', 'test_kl', 'train_property'):
    assert k in rows[-1], k
assert 0 <= rows[-1]['prior_validity'] <= 1
assert rows[-1]['train_recon'] < rows[0]['train_recon'] + 5
"

"$L" sample "$T/m/model.safetensors" -n 40 --seed 2 -o "$T/s.smi" >"$T/sample.out"
check "sample writes 40 SMILES" [ "$(wc -l <"$T/s.smi")" -eq 40 ]
check "sample reports validity" grep -qE "40 SMILES decoded in [0-9.]+ s, [0-9]+ valid" "$T/sample.out"
"$L" sample "$T/m/model.safetensors" -n 40 --seed 2 -o "$T/s2.smi" >/dev/null
check "the same seed gives the same molecules" cmp -s "$T/s.smi" "$T/s2.smi"

"$L" eval "$T/m/model.safetensors" --json --samples 100 --limit 60 >"$T/eval.json"
check "eval reports MOSES metrics and reconstruction" $PY -c "
import json
j = json.load(open('$T/eval.json'))
p = j['prior']
assert p['samples'] == 100 and 0 <= p['validity'] <= 1, p
assert j['reconstruction']['molecules'] == 60
assert j['examples'] == 60 and 'token_accuracy' in j and 'elbo' in j
"

"$L" interpolate "$T/m/model.safetensors" --from 'CCOc1ccccc1' --to 'c1ccc2ccccc2c1' --steps 4 -o "$T/walk.png" >"$T/walk.out"
check "interpolate draws the walk" is_png "$T/walk.png"
check "interpolate lists every step" [ "$(grep -cE '^ *[0-9]+  (valid|invalid)' "$T/walk.out")" -eq 4 ]
"$L" interpolate "$T/m/model.safetensors" --from 0 --to 1 --steps 3 -o "$T/walk.smi" >/dev/null
check "interpolate between test molecules to .smi" [ "$(wc -l <"$T/walk.smi")" -eq 3 ]

printf 'CCOc1ccccc1 phenetole\nCC(=O)Nc1ccc(O)cc1 paracetamol\n' >"$T/seeds.smi"
"$L" optimize "$T/m/model.safetensors" --property qed --from "$T/seeds.smi" --steps 3 --similarity 0.4 -o "$T/opt.csv" \
  >"$T/opt.out" 2>/dev/null
check "optimize writes a row per seed" [ "$(wc -l <"$T/opt.csv")" -eq 3 ]
check "optimize summarizes" grep -q "qed: 2 seeds, 3 steps" "$T/opt.out"

# A user's CSV with a SMILES column under another name, its numbers a property of the head.
{
  echo "id,structure,activity"
  i=0
  while read -r s _; do i=$((i + 1)); echo "m$i,$s,$((i % 7)).5"; done < <(head -n 300 "$T/s.smi" | grep -v '^$'; \
    printf 'CCO\nCCN\nCCC\nc1ccccc1\nCC(=O)O\nCCOC\nCCCl\nOCCO\nc1ccncc1\nCC(C)O\n')
} >"$T/user.csv"
"$L" train --data "$T/user.csv" --smiles-column structure --config "${TINY%\}}, \"properties\": [\"activity\", \"qed\"]}" \
  --epochs 1 --batch-size 8 --test-fraction 0.2 --threads 2 --quiet --out "$T/u" >/dev/null 2>"$T/u.err"
check "train on a CSV with --smiles-column and a property column" [ -s "$T/u/model.safetensors" ] || cat "$T/u.err"

expect_error "is not a molecule RDKit can read" "$L" interpolate "$T/m/model.safetensors" --from 'C1CC' --to CCO -o "$T/x.png"
expect_error "predicts logp, qed, sa, plogp, not 'tpsa'" "$L" optimize "$T/m/model.safetensors" --property tpsa --from CCO
expect_error "give -o FILE.smi" "$L" sample "$T/m/model.safetensors" -n 4 -o "$T/x.png"
expect_error "molecules are read by a smiles_vae" "$L" train --data molecules --epochs 1 --out "$T/bad"
expect_error "a smiles_vae reads molecules" "$L" train --config "$TINY" --epochs 1 --limit 10 --out "$T/bad2"
expect_error "no column named 'nope'" "$L" train --data "$T/user.csv" --smiles-column nope --config "$TINY" --out "$T/bad3"
expect_error "unknown key 'hidden' for type smiles_vae" "$L" train --data molecules --config '{"type": "smiles_vae", "hidden": [4]}' --out "$T/bad4"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
