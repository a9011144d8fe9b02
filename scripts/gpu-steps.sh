# Sourced by the scripts/h200-*-experiment.sh scripts: the binaries, the output folder and `step`, which
# runs one command under a time limit, logs it and remembers a failure (a wrong result is a failure).
# Sets AIPE, GPU_TESTS, LOG and fail; needs OUT.
: "${OUT:?set OUT to the output folder}"
AIPE=${AIPE:-build/bin/aipe}
GPU_TESTS=${GPU_TESTS:-$(dirname "$AIPE")/aipe_gpu_tests}  # beside aipe unless given
[[ -x $AIPE ]] || { echo "no $AIPE: build first (cmake --build build --target aipe)" >&2; exit 2; }
mkdir -p "$OUT"
LOG=$OUT/log.txt
: >"$LOG"
fail=0
step() {  # step NAME CMD...
  local name=$1; shift
  echo "== $name: $*" | tee -a "$LOG"
  local t0=$SECONDS
  # A hung kernel must not eat the whole call: every step has its own limit.
  timeout "${STEP_LIMIT:-120}" "$@" >>"$LOG" 2>&1 || { echo "   FAILED (exit $?)" | tee -a "$LOG"; fail=1; }
  echo "   $((SECONDS - t0)) s" | tee -a "$LOG"
}
