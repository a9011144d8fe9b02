#!/usr/bin/env bash
# One GPU call for issue 16 item 4 on the H200: block-scaled FP8 (1x128 activations, 128x128 weights)
# against cuBLASLt's matching mode in the same process at 8192^3. First the GPU tests of the blockwise
# ladder (every rung at the small awkward size, and the stream-K / K-serpentine edge cases), then the top
# rungs and cublaslt at the default size, twice (the spread between the two runs is the noise to read the
# ratios by), then the whole ladder once at the small size as a check that every rung still verifies from
# the CLI. Needs a build in ./build (build/bin/aipe, build/bin/aipe_gpu_tests) and $OUT (a folder).
# About 60-90 s of GPU time (each step capped at STEP_LIMIT=120 s). Writes to $OUT:
#   fp8bw.json     aipe run ch10/gemm_fp8_blockwise, the top rungs + cublaslt, 8192^3 (run 1)
#   fp8bw_b.json   the same again (run 2)
#   log.txt        everything the commands printed
#   summary.txt    the table printed last: run, rung, TFLOP/s, x cublaslt of the same run, SM MHz, power
set -uo pipefail
source "$(dirname "$0")/gpu-steps.sh"

# Correctness first, at the small awkward sizes (seconds): every rung, then the schedules' edge paths.
if [[ -x $GPU_TESTS ]]; then
  step gpu_tests "$GPU_TESTS" \
    '--gtest_filter=Registry/EveryExample.VerifiesAtSmallAwkwardSize/ch10_gemm_fp8*:GemmBlockwiseSchedules.*:GemmStreamK.*'
fi

# The candidates against cuBLASLt: rung 8 (the best before), its stream-K tail, its K serpentine, and the
# 128x192 tiles.
V=(--variant tile_128x256 --variant stream_k --variant k_serpentine --variant tile_128x192 --variant cublaslt)
step run_a "$AIPE" run ch10/gemm_fp8_blockwise "${V[@]}" --no-progress --json "$OUT/fp8bw.json"
step run_b "$AIPE" run ch10/gemm_fp8_blockwise "${V[@]}" --no-progress --json "$OUT/fp8bw_b.json"
step small "$AIPE" run ch10/gemm_fp8_blockwise --small --verify-only --no-progress

python3 - "$OUT" >"$OUT/summary.txt" <<'PY'
import json, os, sys
out = sys.argv[1]
print(f"{'run':10} {'rung':20} {'TFLOP/s':>8} {'x cublaslt':>10} {'sm_mhz':>7} {'power_w':>8} {'noise':>6} status")
for f in ("fp8bw.json", "fp8bw_b.json"):
    path = os.path.join(out, f)
    try:
        res = json.load(open(path))["results"]
    except Exception as e:
        print(f"{f}: unreadable ({e})"); continue
    lt = next((r.get("tflops") for r in res if r["variant"] == "cublaslt" and r["status"] == "passed"), 0) or 0
    for r in res:
        t = r.get("tflops") or 0
        m = r.get("metrics", {})
        ratio = f"{t / lt:10.3f}" if lt and t else f"{'-':>10}"
        print(f"{f[:-5]:10} {r['variant']:20} {t:8.1f} {ratio} {m.get('sm_mhz', 0):7.0f} {m.get('power_w', 0):8.1f}"
              f" {r.get('noise', 0):6.3f} {r['status']} {r.get('reason', '')[:60]}")
PY
cat "$OUT/summary.txt"
echo "total ${SECONDS} s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $fail
