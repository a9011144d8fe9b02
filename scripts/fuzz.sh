#!/usr/bin/env bash
# Runs each libFuzzer target (built by the 'asan' preset: cmake --workflow --preset asan) for a fixed
# time on a seed corpus of docs/results, tests/golden and the target's kept failures, under ASan and
# UBSan. Prints each target's number of executions; fails on any crash, hang (10 s per input), leak or
# sanitizer report, leaving the input that did it in BUILD/fuzz/TARGET/ (add it to
# tests/fuzz/regressions/TARGET/ with the fix, and the CPU tests replay it from then on).
#   usage: scripts/fuzz.sh [BUILD_DIR (build-asan)] [SECONDS per target (60)]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
seconds=${2:-60}
targets=(results_reader peak_cache compare report safetensors_header kv_scheduler rendezvous_message config_json tokenizer_json tokenizer_encode openai_request bench_report prometheus_text)
for t in "${targets[@]}"; do
  if [ ! -x "$build/bin/aipe_fuzz_$t" ]; then
    echo "fuzz: $build/bin/aipe_fuzz_$t is not built (configure with the 'asan' preset; it needs clang)" >&2
    exit 1
  fi
done
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for t in "${targets[@]}"; do
  work="$build/fuzz/$t"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp docs/results/*.json tests/golden/* "$work/corpus/"
  cp tests/fuzz/regressions/"$t"/* "$work/corpus/" 2>/dev/null || true
  log="$work/log.txt"
  rc=0
  "$build/bin/aipe_fuzz_$t" "$work/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -dict=tests/fuzz/json.dict -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ "$rc" -ne 0 ] || ls "$work/artifacts/"* >/dev/null 2>&1; then
    echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} executions; inputs: $(ls "$work/artifacts/" | tr '\n' ' ')"
    grep -E "ERROR|SUMMARY|runtime error|fuzz:|Test unit written" "$log" | head -20 || true
    tail -40 "$log"
    failed=1
  else
    echo "fuzz: $t: ${execs:-?} executions in ${seconds} s, 0 crashes, 0 hangs, 0 sanitizer reports"
  fi
done
exit "$failed"
