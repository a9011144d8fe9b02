#!/usr/bin/env python3
"""Fills the measured columns of the ladder tables in the chapter notes from a recorded run.

A ladder table is a Markdown table whose header is one of
  | # | rung | what changes | median | TFLOP/s | × cuBLASLt | SM MHz | W | capped |   (compute-bound)
  | # | rung | what changes | median | GB/s | × memcpy | SM MHz | W | capped |        (memory-bound)
under a heading that names the example ("### ch10/gemm_fp8"). The first three columns (number, rung,
what changes) are the note's own text; the other six are rewritten from the run's JSON: the median, the
TFLOP/s or GB/s, the ratio of the library rung's median (cublaslt or memcpy) to the rung's, and the NVML
metrics sm_mhz, power_w and power_capped. A rung the run lacks is an error, so a table can never keep a stale number.
A table may name its own run on a line before it, `<!-- results: results/FILE.json -->` (relative to
the note), for a ladder recorded at another size than the whole suite's.

  scripts/update-ladder-tables.py [RESULTS.json] [NOTE.md ...]
  (defaults: docs/results/h200.json, else the earlier GPU's h100.json; docs/ch07.md docs/ch09.md
   docs/ch10.md docs/ch10-fp8.md)
"""
import json
import re
import sys
from pathlib import Path

# header -> (rate field, its format, library rung)
HEADERS = {
    "| # | rung | what changes | median | TFLOP/s | × cuBLASLt | SM MHz | W | capped |": ("tflops", "{:,.1f}", "cublaslt"),
    "| # | rung | what changes | median | GB/s | × memcpy | SM MHz | W | capped |": ("gbps", "{:,.0f}", "memcpy"),
}


def fmt_time(ms):
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 1:
        return f"{ms:.3f} ms"
    return f"{ms * 1000:.1f} µs"


def row_cells(r, lib_ms, rate, rate_fmt):
    m = r.get("metrics") or {}
    ratio = lib_ms / r["median_ms"] if lib_ms else float("nan")
    return [
        fmt_time(r["median_ms"]),
        rate_fmt.format(r[rate]),
        f"{ratio:.3f}",
        f"{m['sm_mhz']:.0f}" if "sm_mhz" in m else "–",
        f"{m['power_w']:.0f}" if "power_w" in m else "–",
        f"{m.get('power_capped', 0.0):.2f}",
    ]


def load(path):
    results = {}
    for r in json.loads(Path(path).read_text())["results"]:
        results.setdefault(r["example"], {})[r["variant"]] = r
    return results


def update(note, default_results):
    lines = note.read_text().split("\n")
    example = None
    own = None  # the run a "<!-- results: ... -->" line names for the next table
    changed = 0
    for i, line in enumerate(lines):
        h = re.match(r"^#{2,4} (ch\d\d/[a-z0-9_]+)\s*$", line)
        if h:
            example = h.group(1)
            continue
        o = re.match(r"^<!-- results: (\S+) -->$", line.strip())
        if o:
            own = load(note.parent / o.group(1))
            continue
        if line.strip() not in HEADERS:
            continue
        rate, rate_fmt, library = HEADERS[line.strip()]
        results = own if own is not None else default_results
        own = None
        if example is None or example not in results:
            sys.exit(f"{note}:{i + 1}: a ladder table under no example heading, or one the run lacks ({example})")
        runs = results[example]
        lib = runs.get(library)
        lib_ms = lib["median_ms"] if lib and lib["status"] == "passed" else None
        j = i + 2
        while j < len(lines) and lines[j].startswith("| "):
            cells = [c.strip() for c in lines[j].strip().strip("|").split("|")]
            v = re.match(r"^`([a-z0-9_]+)`$", cells[1])
            if not v or v.group(1) not in runs:
                sys.exit(f"{note}:{j + 1}: rung {cells[1]} is not in the run's {example}")
            r = runs[v.group(1)]
            if r["status"] != "passed":
                sys.exit(f"{note}:{j + 1}: {example} {v.group(1)} did not pass in the run ({r['status']})")
            lines[j] = "| " + " | ".join(cells[:3] + row_cells(r, lib_ms, rate, rate_fmt)) + " |"
            changed += 1
            j += 1
    note.write_text("\n".join(lines))
    return changed


def main(argv):
    default = Path("docs/results/h200.json")
    if not default.exists():
        default = Path("docs/results/h100.json")
    results_path = Path(argv[1]) if len(argv) > 1 else default
    notes = [Path(p) for p in argv[2:]] or [Path(p) for p in ("docs/ch07.md", "docs/ch09.md", "docs/ch10.md", "docs/ch10-fp8.md")]
    results = load(results_path)
    for note in notes:
        print(f"{note}: {update(note, results)} rows from {results_path}")


if __name__ == "__main__":
    main(sys.argv)
