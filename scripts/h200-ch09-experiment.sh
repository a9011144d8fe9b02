#!/usr/bin/env bash
# One GPU call for issue 15 on the H200: ch09/gemm_bias_gelu's own fused rung against cuBLASLt's GELU_BIAS
# epilogue at 8192x8192x1024 and at the awkward 4097x3001x1000. First the GPU tests of kernels::gemm (every
# shape and epilogue, the overlapped and the serial activation, both store paths) and the ch09 ladders at their
# small awkward sizes, then the ladder at the default size, at 4097x3001x1000 (out % 8 != 0: register stores,
# the serial epilogue) and at 4096x3001x1000 (TMA stores at an awkward shape: the overlapped GELU with partial
# tiles). Needs a build in ./build (build/bin/aipe, build/bin/aipe_gpu_tests) and $OUT (a folder).
# About 40-60 s of GPU time (each step capped at STEP_LIMIT=120 s). Writes to $OUT:
#   ch09.json                 aipe run ch09/gemm_bias_gelu at the default size (8192 x 8192 x 1024)
#   ch09-4097x3001x1000.json  the same at m=4097, n=3001, k=1000
#   ch09-4096x3001x1000.json  the same at m=4096, n=3001, k=1000
#   log.txt                   everything the commands printed
#   summary.txt               the table printed last: size, rung, time, TFLOP/s, x cublaslt of the same run,
#                             the fused rungs' plan (tile, cluster, CTAs, TMA stores, overlapped activation)
set -uo pipefail
source "$(dirname "$0")/gpu-steps.sh"

# Correctness first: kernels::gemm at awkward shapes and every epilogue, then every ch09 rung at its small size.
if [[ -x $GPU_TESTS ]]; then
  step gpu_tests "$GPU_TESTS" \
    '--gtest_filter=Awkward/GemmShapes.*:GemmOnDevice.*:Registry/EveryExample.VerifiesAtSmallAwkwardSize/ch09_*'
else
  echo "no $GPU_TESTS: the GPU tests did not run" | tee -a "$LOG"
  fail=1
fi

step default "$AIPE" run ch09/gemm_bias_gelu --no-progress --json "$OUT/ch09.json"
step awkward "$AIPE" run ch09/gemm_bias_gelu --no-progress --size m=4097 --size n=3001 --size k=1000 \
  --json "$OUT/ch09-4097x3001x1000.json"
step awkward_tma "$AIPE" run ch09/gemm_bias_gelu --no-progress --size m=4096 --size n=3001 --size k=1000 \
  --json "$OUT/ch09-4096x3001x1000.json"

python3 - "$OUT" >"$OUT/summary.txt" <<'PY'
import json, os, sys
out = sys.argv[1]
print(f"{'size':16} {'rung':14} {'median':>10} {'TFLOP/s':>8} {'x cublaslt':>10} {'sm_mhz':>7} "
      f"{'plan (tile_n, cluster, ctas, tma, overlapped)':46} status")
for f, size in (("ch09.json", "8192x8192x1024"), ("ch09-4097x3001x1000.json", "4097x3001x1000"),
                ("ch09-4096x3001x1000.json", "4096x3001x1000")):
    path = os.path.join(out, f)
    try:
        res = json.load(open(path))["results"]
    except Exception as e:
        print(f"{size:16} unreadable ({e})"); continue
    lt = next((r.get("median_ms") for r in res if r["variant"] == "cublaslt" and r["status"] == "passed"), 0) or 0
    for r in res:
        ms = r.get("median_ms") or 0
        m = r.get("metrics", {})
        ratio = f"{lt / ms:10.3f}" if lt and ms else f"{'-':>10}"
        plan = ""
        if "tile_n" in m:
            plan = (f"{m['tile_n']:.0f}, {m.get('cluster_m', 0):.0f}, {m.get('ctas', 0):.0f}, "
                    f"{m.get('tma_store', 0):.0f}, {m.get('activation_overlapped', 0):.0f}")
        print(f"{size:16} {r['variant']:14} {ms:10.4f} {r.get('tflops') or 0:8.1f} {ratio} "
              f"{m.get('sm_mhz', 0):7.0f} {plan:46} {r['status']} {r.get('reason', '')[:50]}")
PY
cat "$OUT/summary.txt"
echo "total ${SECONDS} s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $fail
