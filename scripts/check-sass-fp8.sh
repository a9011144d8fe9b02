#!/usr/bin/env bash
# Checks that every FP8 warp-specialized GEMM kernel (aipe::fp8::gemm_ws_kernel<...>) compiled to QGMMA, the
# Hopper FP8 tensor-core instruction behind wgmma.mma_async ... .e4m3.e4m3, and counts them.
#   scripts/check-sass-fp8.sh [BINARY]        (default build/bin/aipe; exit 0 pass, 1 fail, 77 skipped)
set -euo pipefail
BIN=${1:-build/bin/aipe}
CUOBJDUMP=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
if [ ! -x "$CUOBJDUMP" ]; then echo "check-sass-fp8: cuobjdump not found: skipped"; exit 77; fi
"$CUOBJDUMP" -sass "$BIN" | awk '
  /Function : / { fn = $3; if (fn ~ /gemm_ws_kernel/) { seen[fn] = 1; q[fn] += 0 } next }
  /QGMMA/ { if (fn in seen) q[fn]++ }
  END {
    n = 0; bad = 0
    for (f in seen) { n++; printf "%-90s QGMMA x %d\n", f, q[f]; if (q[f] == 0) bad = 1 }
    if (n == 0) { print "check-sass-fp8: no gemm_ws_kernel in the binary (built without sm_90a?)"; exit 1 }
    if (bad) { print "check-sass-fp8: FAIL: a kernel has no QGMMA"; exit 1 }
    print "check-sass-fp8: PASS"
  }'
