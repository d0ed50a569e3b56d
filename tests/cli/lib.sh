# Helpers of the CLI test scripts (sourced): pass/fail counting and small checks.
PY=/usr/bin/python3
failures=0
passes=0
ok() { passes=$((passes + 1)); echo "ok: $*"; }
fail() { failures=$((failures + 1)); echo "FAIL: $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }

# expect_error PHRASE CMD...: non-zero exit, exactly one line on stderr containing PHRASE, no crash.
expect_error() {  # uses $T, the test's temporary folder
  local phrase="$1"; shift
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  local lines; lines=$(wc -l <"$T/err")
  if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [ "$lines" -eq 1 ] && grep -qF -- "$phrase" "$T/err"; then
    ok "error '$phrase'"
  else
    fail "error '$phrase' (rc=$rc, $lines stderr lines): $(head -c 400 "$T/err")"
  fi
}

