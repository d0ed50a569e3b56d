#!/usr/bin/env bash
# The built-in molecule pool against RDKit's Python on every molecule: the same molecules and split,
# logP, weight, TPSA, QED and SA within 1e-5. Then the cached file is read back (no rebuild) and a
# damaged cache is rebuilt.   test_pool.sh CHEM_POOL_BINARY
set -euo pipefail
tool=$1
here=$(cd "$(dirname "$0")" && pwd)
/usr/bin/python3 -c "import rdkit" 2>/dev/null || { echo "skipped: needs python3-rdkit (scripts/setup.sh)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
set +e
"$tool" "$work"
rc=$?
set -e
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "FAIL: chem_pool exited $rc"; exit 1; }
/usr/bin/python3 "$here/rdkit_reference.py" check "$work/molecules.csv"

# A second call reads the cache and leaves it as it was.
cp "$work/molecules.csv" "$work/first.csv"
"$tool" "$work" > /dev/null
cmp "$work/molecules.csv" "$work/first.csv" || { echo "FAIL: the cache changed on reading"; exit 1; }
# A damaged cache is rebuilt, not believed: cut in the middle of a line, and cut at a line end.
for cut in "head -c 5000" "head -n 300"; do
  $cut "$work/first.csv" > "$work/molecules.csv"
  "$tool" "$work" > /dev/null
  cmp "$work/molecules.csv" "$work/first.csv" || { echo "FAIL: a cache cut by '$cut' was not rebuilt"; exit 1; }
done
echo "PASS: pool matches RDKit, cache read back and rebuilt"
