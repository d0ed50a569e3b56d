#!/usr/bin/env bash
# Every test: install what is missing, build, then run CTest in three ways (each names itself):
#   native    every test (unit, fixture, CLI, server and browser) on this CPU as it is;
#   avx2      the unit and CLI tests (but the distributed one, whose kernels the others cover, and the
#             molecule pool's check against RDKit's Python, which runs RDKit's code only) again
#             with every ISA capped at AVX2, as on a CPU without AVX-512 or bfloat16: latent's
#             kernels and oneDNN by LATENT_MAX_CPU_ISA, LibTorch's by ATEN_CPU_CAPABILITY and
#             OPENBLAS_CORETYPE (skipped, saying so, on a CPU without AVX2);
#   package   cmake --install into build/install, then examples/ built against that installed package
#             (find_package(latent)) and run: train, sample, score;
#   portable  the unit tests of a second build that compiles no x86 intrinsics (-DLATENT_PORTABLE=ON,
#             in build-portable/), on the portable kernels every architecture runs;
#   sanitize  the unit and server tests of a clang build with AddressSanitizer and UndefinedBehavior-
#             Sanitizer (build-sanitize/, -DLATENT_FUZZ=ON: the same tree builds the fuzz targets);
#   fuzz      every fuzz target for 20 s on its seed corpus (scripts/fuzz.sh 20): a regression in a
#             parser shows at the next landing.
# scripts/test.sh [native] [avx2] [package] [portable] [sanitize] [fuzz] [-- CTEST ARGS]: some phases
# only (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
phases=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do phases+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#phases[@]} -gt 0 ] || phases=(native avx2 package portable sanitize fuzz)
scripts/setup.sh
scripts/build.sh
status=0
for phase in "${phases[@]}"; do
  echo "=== tests: $phase"
  case "$phase" in
    native) (cd build && ctest --output-on-failure -j2 "$@") || status=1 ;;
    avx2)
      if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
        (cd build && LATENT_MAX_CPU_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell \
          ctest --output-on-failure -j2 -E '^(browser\.|cli\.distributed$|chem\.)' "$@") || status=1
      else
        echo "skipped: this CPU has no AVX2"
      fi ;;
    package)
      rm -rf build/install build/examples
      cmake --install build --prefix "$PWD/build/install" >/dev/null
      cmake -S examples -B build/examples -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PWD/build/install" >build/examples.log 2>&1 ||
        { cat build/examples.log; exit 1; }
      cmake --build build/examples -j"$(nproc)"
      if build/examples/train_sample_score build/examples/out 3 && [ -s build/examples/out/samples.png ]; then
        echo "package: examples/train_sample_score built against build/install and passed"
      else
        echo "package: examples/train_sample_score FAILED"; status=1
      fi ;;
    portable)
      cmake -S . -B build-portable -DCMAKE_BUILD_TYPE=Release -DLATENT_PORTABLE=ON -DLATENT_BUILD_BENCH=OFF >build-portable.log 2>&1 ||
        { cat build-portable.log; exit 1; }
      cmake --build build-portable -j"$(nproc)" --target latent_tests latent_server_tests
      (cd build-portable && ctest --output-on-failure -j2 -E '^(cli|browser|chem)\.' "$@") || status=1 ;;
    sanitize)
      export UBSAN_OPTIONS=print_stacktrace=1
      cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DLATENT_FUZZ=ON \
        -DLATENT_BUILD_BENCH=OFF >build-sanitize.log 2>&1 || { cat build-sanitize.log; exit 1; }
      cmake --build build-sanitize -j"$(nproc)" --target latent_tests latent_server_tests >>build-sanitize.log 2>&1 ||
        { tail -50 build-sanitize.log; exit 1; }
      (cd build-sanitize && ctest --output-on-failure -j2 -E '^(cli|browser|chem)\.' "$@") || status=1 ;;
    fuzz) scripts/fuzz.sh 20 || status=1 ;;
    *) echo "scripts/test.sh: unknown phase '$phase' (native, avx2, package, portable, sanitize or fuzz)"; exit 2 ;;
  esac
done
exit $status
