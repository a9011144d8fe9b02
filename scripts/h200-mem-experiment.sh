#!/usr/bin/env bash
# One GPU call for issue 16 items 1-3 on the H200: sustained compute ceilings (aipe peak), the copy
# ladder's candidate rungs and knob sweeps against cudaMemcpy in the same process, and the transpose
# rungs at 16384^2 and 12345x6789. Needs a build in ./build (build/bin/aipe) and $OUT (a folder).
# About 4 minutes of GPU time (each step capped at STEP_LIMIT=150 s). Writes at most 7 files to $OUT:
#   peak.json                 aipe peak --quick --only dram --only compute --only tensor
#   copy_ladder.json          every copy rung at the default sizes
#   copy_sweep.tar.gz         one JSON per knob setting (each with memcpy, for the same-run ratio)
#   transpose_16384.json, transpose_12345x6789.json
#   log.txt                   everything the commands printed
#   summary.txt               the table printed last: rung, knobs, GB/s, x memcpy of the same run
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
AIPE=${AIPE:-build/bin/aipe}
[[ -x $AIPE ]] || { echo "no $AIPE: build first (cmake --build build --target aipe)" >&2; exit 2; }
mkdir -p "$OUT/sweep"
LOG=$OUT/log.txt
: >"$LOG"
fail=0
step() {  # step NAME CMD...: runs a command, logs it, remembers a failure (a wrong result is a failure)
  local name=$1; shift
  echo "== $name: $*" | tee -a "$LOG"
  local t0=$SECONDS
  # A hung kernel must not eat the whole call: every step has its own limit.
  timeout "${STEP_LIMIT:-150}" "$@" >>"$LOG" 2>&1 || { echo "   FAILED (exit $?)" | tee -a "$LOG"; fail=1; }
  echo "   $((SECONDS - t0)) s" | tee -a "$LOG"
}
# Shorter sampling for the sweeps: each setting is compared with memcpy of the same process.
SW=(--no-progress --budget 0.4)

# Correctness first, at the small awkward sizes (seconds): every new rung and knob kernel bit for bit.
if [[ -x build/bin/aipe_gpu_tests ]]; then
  step gpu_tests build/bin/aipe_gpu_tests \
    '--gtest_filter=CopyLadderKnobs.*:TransposeVec4.*:Registry/EveryExample.VerifiesAtSmallAwkwardSize/ch07_*'
fi
# --quick: 512 MiB DRAM buffers, two GEMM shapes per type, warm-up capped at 4 s per row (about a
# minute); the full run for the record is a separate call.
step peak "$AIPE" peak --quick --only dram --only compute --only tensor --no-progress --json "$OUT/peak.json"
step copy_ladder "$AIPE" run ch07/copy_ladder "${SW[@]}" --json "$OUT/copy_ladder.json"

sweep() {  # sweep TAG VARIANT KNOB=VALUE...
  local tag=$1 variant=$2; shift 2
  local sizes=()
  for kv in "$@"; do sizes+=(--size "$kv"); done
  step "sweep $tag" "$AIPE" run ch07/copy_ladder --variant "$variant" --variant memcpy "${sizes[@]}" "${SW[@]}" \
    --json "$OUT/sweep/$tag.json"
}
# wide_chunks: bytes per block and loads in flight per thread (chunk_kib x 1024 / (threads x 16)).
sweep wide_16k_512t      wide_chunks chunk_kib=16 chunk_threads=512     # = block_chunks (2 loads/thread)
sweep wide_64k_512t      wide_chunks chunk_kib=64 chunk_threads=512     # 8 loads/thread
sweep wide_32k_256t      wide_chunks chunk_kib=32 chunk_threads=256     # 8 loads/thread, 256 threads
sweep wide_64k_1024t     wide_chunks chunk_kib=64 chunk_threads=1024    # 4 loads/thread, 1024 threads
sweep wide_64k_256t      wide_chunks chunk_kib=64 chunk_threads=256     # 16 loads/thread
sweep wide_128k_1024t    wide_chunks chunk_kib=128 chunk_threads=1024   # 8 loads/thread, 2 blocks/SM
sweep wide_8k_256t       wide_chunks chunk_kib=8 chunk_threads=256      # 2 loads/thread, small blocks
# wide_chunks at 32 KiB x 512 threads: cache policies and 32 bytes per thread.
sweep wide_32k_cs        wide_chunks chunk_policy=1
sweep wide_32k_nc256_cs  wide_chunks chunk_policy=2
sweep wide_32k_evictfirst wide_chunks chunk_policy=3
sweep wide_32k_nol1      wide_chunks chunk_policy=4
sweep wide_32k_pair32    wide_chunks chunk_pair32=1
sweep wide_32k_2streams  wide_chunks chunk_order=1
# tma_bulk: chunk size x stages (the default is 64 KiB x 3).
sweep bulk_32k_6         tma_bulk bulk_kib=32 bulk_stages=6
sweep bulk_16k_8         tma_bulk bulk_kib=16 bulk_stages=8
sweep bulk_96k_2         tma_bulk bulk_kib=96 bulk_stages=2
# sliced: contiguous slice per block, exact grid.
sweep sliced_u8          sliced slice_unroll=8
sweep sliced_1bpsm_u8    sliced slice_unroll=8 slice_blocks_per_sm=1
tar -C "$OUT" -czf "$OUT/copy_sweep.tar.gz" sweep

step transpose_16384 "$AIPE" run ch07/transpose --no-progress --json "$OUT/transpose_16384.json"
step transpose_odd "$AIPE" run ch07/transpose --no-progress --size rows=12345 --size cols=6789 \
  --json "$OUT/transpose_12345x6789.json"

python3 - "$OUT" >"$OUT/summary.txt" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
def rows(path):
    try:
        return json.load(open(path))
    except Exception as e:
        print(f"{os.path.basename(path)}: unreadable ({e})"); return None
p = rows(os.path.join(out, "peak.json"))
if p:
    print("aipe peak (value = sustained; burst = first, cold measurement):")
    print(f"  {'row':28} {'value':>9} {'burst':>9} {'SM MHz':>7} {'W':>6} {'% spec':>7} {'warm s':>6} {'steady':>6}  config")
    for r in p["rows"]:
        if r.get("skipped"):
            print(f"  {r['name']:28} skipped: {r.get('reason','')}"); continue
        x = r.get("extra", {})
        print(f"  {r['name']:28} {r['value']:9.1f} {r.get('burst',0):9.1f} {r.get('sm_mhz',0):7.0f} {r.get('power_w',0):6.1f}"
              f" {r.get('pct_of_spec',0):6.1f}% {x.get('warmup_s',0):6.1f} {x.get('steady','-'):>6}  {r['config'][:80]}")
    sm = next((r for r in p["rows"] if r["name"] == "dram_copy_sm"), None)
    ce = next((r for r in p["rows"] if r["name"] == "dram_copy_memcpy"), None)
    if sm and ce and ce["value"] > 0:
        print(f"  SM copy / memcpy = {sm['value'] / ce['value']:.3f}  (best: {sm['config']})")
print()
print(f"{'file':28} {'rung':14} {'knobs (non-default)':44} {'GB/s':>8} {'x memcpy':>9} status")
defaults = {}
files = [os.path.join(out, f) for f in ("copy_ladder.json", "transpose_16384.json", "transpose_12345x6789.json")]
files += sorted(glob.glob(os.path.join(out, "sweep", "*.json")))
for f in files:
    j = rows(f)
    if not j: continue
    res = j.get("results", [])
    mc = next((r["gbps"] for r in res if r["variant"] == "memcpy" and r["status"] == "ok"), 0) or 0
    for r in res:
        ex = r["example"]
        if f.endswith("copy_ladder.json") or f.endswith("_16384.json"): defaults[ex] = r["sizes"]
        knobs = " ".join(f"{k}={v}" for k, v in sorted(r["sizes"].items()) if defaults.get(ex, {}).get(k) != v)
        g = r.get("gbps") or 0
        ratio = f"{g / mc:9.3f}" if mc and g else f"{'-':>9}"
        print(f"{os.path.basename(f)[:-5]:28} {r['variant']:14} {knobs[:44]:44} {g:8.0f} {ratio} {r['status']}")
PY
rm -rf "$OUT/sweep"  # kept in copy_sweep.tar.gz
cat "$OUT/summary.txt"
echo "total ${SECONDS} s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $fail
