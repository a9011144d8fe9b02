#!/usr/bin/env bash
# One GPU call for issue 16 items 2-3 on the H200, round 3: the new candidates only, each against
# cudaMemcpy in the same process: ch07/copy_ladder's pipelined_pairs beside wide_chunks (the best of
# rounds 1-2), and ch07/transpose's tile128_pipelined beside tile128_sector (round 2's 0.895x) at
# 12345x6789 and 16384^2. Rounds 1-2 chose the defaults (docs/ch07.md); their settings are not re-run.
# Needs a build in ./build (build/bin/aipe) and $OUT (a folder). About 30 s of GPU time (each step
# capped at STEP_LIMIT=120 s). Writes at most 6 files to $OUT:
#   peak.json                 aipe peak --quick --only dram (SM copy vs memcpy: PeakGpu's 0.97x invariant)
#   copy_sweep.tar.gz         one JSON per run (each with memcpy, for the same-run ratio)
#   transpose_16384.json, transpose_12345x6789.json
#   log.txt                   everything the commands printed
#   summary.txt               the table printed last: rung, knobs, GB/s, x memcpy of the same run
set -uo pipefail
source "$(dirname "$0")/gpu-steps.sh"
mkdir -p "$OUT/sweep"
# Sampling for the sweeps: each setting is compared with memcpy of the same process.
SW=(--no-progress --budget 1)

# Correctness first, at the small awkward sizes (seconds): every new rung and knob kernel bit for bit.
if [[ -x $GPU_TESTS ]]; then
  step gpu_tests "$GPU_TESTS" \
    '--gtest_filter=CopyLadderKnobs.*:TransposeSector.*:TransposeVec4.*:Registry/EveryExample.VerifiesAtSmallAwkwardSize/ch07_*'
fi
# --quick: 512 MiB DRAM buffers; the SM copy tries kCopyWinner, the pipelined copies, then the rest.
step peak "$AIPE" peak --quick --only dram --no-progress --json "$OUT/peak.json"

sweep() {  # sweep TAG KNOB=VALUE... -- VARIANT...
  local tag=$1; shift
  local sizes=() variants=()
  while [[ $# -gt 0 && $1 != -- ]]; do sizes+=(--size "$1"); shift; done
  shift
  for v in "$@" memcpy; do variants+=(--variant "$v"); done
  step "sweep $tag" "$AIPE" run ch07/copy_ladder "${variants[@]}" "${sizes[@]}" "${SW[@]}" --json "$OUT/sweep/$tag.json"
}
# The defaults, twice: the spread between the two runs is the noise to read the ratios by.
sweep defaults_a -- pipelined_pairs wide_chunks
sweep defaults_b -- pipelined_pairs wide_chunks
tar -C "$OUT" -czf "$OUT/copy_sweep.tar.gz" sweep

TV=(--variant tile64_vec4 --variant tile128_sector --variant tile128_pipelined --variant memcpy)
step transpose_16384 "$AIPE" run ch07/transpose "${TV[@]}" --no-progress --json "$OUT/transpose_16384.json"
step transpose_odd "$AIPE" run ch07/transpose "${TV[@]}" --no-progress --size rows=12345 --size cols=6789 \
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
print(f"{'file':28} {'rung':18} {'knobs (non-default)':44} {'GB/s':>8} {'x memcpy':>9} status")
defaults = {}
files = sorted(glob.glob(os.path.join(out, "sweep", "*.json")))
files += [os.path.join(out, f) for f in ("transpose_16384.json", "transpose_12345x6789.json")]
for f in files:
    j = rows(f)
    if not j: continue
    res = j.get("results", [])
    mc = next((r.get("gbps") for r in res if r["variant"] == "memcpy" and r["status"] == "passed"), 0) or 0
    for r in res:
        ex = r["example"]
        if f.endswith("defaults_a.json") or f.endswith("_16384.json"): defaults[ex] = r["sizes"]
        knobs = " ".join(f"{k}={v}" for k, v in sorted(r["sizes"].items()) if defaults.get(ex, {}).get(k) != v)
        g = r.get("gbps") or 0
        ratio = f"{g / mc:9.3f}" if mc and g else f"{'-':>9}"
        print(f"{os.path.basename(f)[:-5]:28} {r['variant']:18} {knobs[:44]:44} {g:8.0f} {ratio} {r['status']}")
PY
rm -rf "$OUT/sweep"  # kept in copy_sweep.tar.gz
cat "$OUT/summary.txt"
echo "total ${SECONDS} s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $fail
