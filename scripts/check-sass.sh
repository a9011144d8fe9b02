#!/usr/bin/env bash
# Checks that the kernels of a compiled binary or object use the instruction they are named for.
#   scripts/check-sass.sh FILE INSTRUCTION KERNEL_PATTERN...
# Every kernel whose (mangled) name contains a KERNEL_PATTERN must contain INSTRUCTION in its SASS,
# and every pattern must match at least one kernel. Example: the WGMMA rungs of ch10 must show HGMMA:
#   scripts/check-sass.sh build/bin/aipe HGMMA gemm_wgmma_tma gemm_wsILi
# Exit 0: all present; 1: a kernel lacks it or a pattern matched nothing; 77: no cuobjdump (skipped).
set -uo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 FILE INSTRUCTION KERNEL_PATTERN..." >&2
  exit 2
fi
file=$1 instr=$2
shift 2
CUOBJDUMP=${CUOBJDUMP:-$(command -v cuobjdump || true)}
if [ -z "$CUOBJDUMP" ]; then
  for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    if [ -n "$d" ] && [ -x "$d/bin/cuobjdump" ]; then CUOBJDUMP=$d/bin/cuobjdump; break; fi
  done
fi
if [ -z "$CUOBJDUMP" ]; then
  echo "SKIPPED: cuobjdump not found (install the CUDA toolkit's cuobjdump or set CUOBJDUMP)"
  exit 77
fi
if [ ! -f "$file" ]; then
  echo "no such file: $file" >&2
  exit 2
fi
sass=$(mktemp)
trap 'rm -f "$sass"' EXIT
"$CUOBJDUMP" -sass "$file" >"$sass" || { echo "cuobjdump failed on $file" >&2; exit 1; }
# One line per kernel: "<mangled name> <count of INSTRUCTION>".
counts=$(awk -v ins="$instr" '
  /Function : / { if (name != "") print name, n; name = $NF; n = 0; next }
  { if (index($0, ins) > 0) n++ }
  END { if (name != "") print name, n }' "$sass")
status=0
for pat in "$@"; do
  matched=$(printf '%s\n' "$counts" | awk -v p="$pat" 'index($1, p) > 0')
  if [ -z "$matched" ]; then
    echo "FAIL: no kernel matching '$pat' in $file"
    status=1
    continue
  fi
  while read -r name n; do
    if [ "$n" -gt 0 ]; then
      echo "ok:   $name: $n x $instr"
    else
      echo "FAIL: $name: no $instr in its SASS"
      status=1
    fi
  done <<<"$matched"
done
exit $status
