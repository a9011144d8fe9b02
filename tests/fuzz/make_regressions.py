#!/usr/bin/env python3
"""Writes the inputs that broke `aipe report` and `compare` before their readers and charts were
guarded (issue 17), from docs/results/h100-ch12.json, into tests/fuzz/regressions/TARGET/. Run once;
the files are kept in git and replayed by tests/fuzz/replay_test.cpp. Inputs a fuzz run finds later
are added to the same folders by hand (the crash-* file libFuzzer writes)."""
import copy, json, os, sys

root = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(root, "..", "..", "docs", "results", "h100-ch12.json")
base = json.load(open(src))


def variant(edit):
    d = copy.deepcopy(base)
    edit(d)
    return json.dumps(d, indent=1)


def all_results(f):
    def edit(d):
        for r in d["results"]:
            f(r)
    return edit


def first(f):
    return lambda d: f(d["results"][0])


def put(target, name, text):
    os.makedirs(os.path.join(root, "regressions", target), exist_ok=True)
    with open(os.path.join(root, "regressions", target, name), "w", encoding="utf-8") as out:
        out.write(text)


# report: hangs of the chart code (log10 of 0 or of inf, a tick step of inf).
put("report", "ch12-no-intensity.json", variant(all_results(lambda r: r.pop("intensity", None))))
put("report", "tflops-1e308.json", variant(first(lambda r: r.update(tflops=1e308))))
put("report", "gbps-1e308.json", variant(all_results(lambda r: r.update(flops=0, gbps=1e308))))
put("report", "latency-median-1e308.json", variant(all_results(lambda r: r.update(flops=0, bytes=0, median_ms=1e308))))
put("report", "spec-dram-1e308.json", variant(lambda d: d["ceilings"]["spec"].update(dram_gbps=1e308)))
put("report", "speedup-1e308.json", variant(first(lambda r: r.update(speedup_vs_baseline=1e308))))
put("report", "escape-in-names.json", variant(lambda d: (d["device"].update(name="\u001b]0;owned\u0007GPU"),
                                                        d["results"][0].update(example="ch12/\u001b[2Jx"))))
# results_reader: float-to-integer overflow (UBSan) and the exception that escaped as exit 1.
put("results_reader", "sizes-1e99.json", variant(first(lambda r: r.update(sizes={"n": 1e99}))))
put("results_reader", "samples-1e99.json", variant(first(lambda r: r.update(samples=1e99))))
put("results_reader", "sm-count-1e99.json", variant(lambda d: d["device"].update(sm_count=1e99)))
put("results_reader", "smem-per-sm-negative.json", variant(lambda d: d["device"].update(smem_per_sm_bytes=-1e30)))
put("results_reader", "max-threads-1.5.json", variant(lambda d: d["device"].update(max_threads_per_sm=1.5)))
put("results_reader", "cc-abc.json", variant(lambda d: d["device"].update(compute_capability="abc.0")))
put("results_reader", "cc-huge.json", variant(lambda d: d["device"].update(compute_capability="99999999999.0")))
# compare: the same overflows on either side, and escape codes in the names it prints.
put("compare", "sizes-1e99-old.json", variant(first(lambda r: r.update(sizes={"n": 1e99}))) + "\0" + json.dumps(base))
put("compare", "escape-in-names.json",
    variant(lambda d: (d["device"].update(name="\u001b[31mred"), d["results"][0].update(variant="v\u009b2J"))))
put("compare", "median-1e308.json", json.dumps(base) + "\0" + variant(all_results(lambda r: r.update(median_ms=1e308))))
# peak_cache: the measured-peaks file `aipe run` reads.
peaks = {"uuid": "GPU-x", "source": "aipe peak", "peaks": base["ceilings"]["spec"]}
put("peak_cache", "ok.json", json.dumps(peaks))
bad = copy.deepcopy(peaks); bad["peaks"]["dram_gbps"] = "fast"
put("peak_cache", "rate-is-a-string.json", json.dumps(bad))
bad = copy.deepcopy(peaks); bad["peaks"] = [1, 2]
put("peak_cache", "peaks-not-an-object.json", json.dumps(bad))
put("peak_cache", "rate-1e999.json", json.dumps(peaks).replace('"dram_gbps": 3352.32', '"dram_gbps": 1e999'))
bad = copy.deepcopy(peaks); bad["source"] = 7
put("peak_cache", "source-not-a-string.json", json.dumps(bad))
