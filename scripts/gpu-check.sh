#!/usr/bin/env bash
# One call on a GPU machine: device report, GPU tests, sanitizer on the small sizes, then the suite
# (or the given patterns) with results as JSON. Logs and results go to $OUT (default ./gpu-out).
#   scripts/gpu-check.sh [--no-tests] [--no-sanitizer] [PATTERN...] [-- extra aipe run flags]
# Expects a build in ./build (cmake --preset default && cmake --build --preset default).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
BIN=build/bin
tests=1 sanitizer=1 patterns=() extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-tests) tests=0 ;;
    --no-sanitizer) sanitizer=0 ;;
    --) shift; extra=("$@"); break ;;
    *) patterns+=("$1") ;;
  esac
  shift
done
# ctest's files name the absolute build path of the machine that configured it.
src=$(sed -n 's/^# Source directory: //p' build/CTestTestfile.cmake 2>/dev/null)
if [ -n "$src" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi

status=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,power.limit --format=csv \
  >"$OUT/nvidia-smi.csv" 2>&1 || true
"$BIN/aipe" info --json "$OUT/info.json" >"$OUT/info.txt" 2>&1 || status=1
if [ "$tests" = 1 ]; then
  ctest --test-dir build -L gpu --output-on-failure >"$OUT/ctest-gpu.log" 2>&1 || status=1
  tail -n 3 "$OUT/ctest-gpu.log"
fi
if [ "$sanitizer" = 1 ]; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/aipe" run "${patterns[@]}" --small --verify-only \
      --no-progress >"$OUT/sanitizer-$tool.log" 2>&1 || status=1
    echo "compute-sanitizer $tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|errors|hazard' "$OUT/sanitizer-$tool.log" | tail -1)"
  done
fi
"$BIN/aipe" run "${patterns[@]}" --json "$OUT/run.json" "${extra[@]}" >"$OUT/run.txt" 2>"$OUT/run.err" || status=1
cat "$OUT/run.txt"
tail -n 5 "$OUT/run.err"
exit $status
