// Verification: compare a result with its reference, element by element (|out - ref| <= abs + rel*|ref|)
// and as a whole (||out - ref||2 / ||ref||2 <= norm_rel). NaN and Inf never pass. Failures name the
// first mismatches with their index, expected and actual values.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "aipe/hd.hpp"

namespace aipe {

enum class DType { f64, f32, tf32, f16, bf16, fp8_e4m3, i32, i8, u8, exact };
const char* to_string(DType t);

struct Tolerance {
  double abs = 0;       // absolute term
  double rel = 0;       // relative term, times |ref|
  double norm_rel = 0;  // bound on ||out - ref|| / ||ref||
};

// Default tolerance for results produced in a given precision (the precision of the inputs that the
// arithmetic rounds to, or of the stored output, whichever is coarser). Examples may scale it, and
// say why in a comment.
Tolerance tolerance_for(DType t);

struct Mismatch {
  std::size_t index;
  double expected;
  double actual;
};

struct VerifyResult {
  bool ok = true;
  std::size_t checked = 0;
  std::size_t mismatches = 0;
  std::size_t non_finite = 0;
  double max_abs_error = 0;
  double max_rel_error = 0;   // over elements with |ref| > the absolute tolerance
  double norm_rel_error = 0;  // ||out - ref|| / ||ref||
  std::vector<Mismatch> first;  // up to 8
  std::string note;             // extra context from the example
  std::string message() const;  // one line: "3 of 1000 elements wrong, first at [17]: expected 1.5, got nan; ..."
  // Folds another result (a second output of the same variant) into this one.
  void merge(const VerifyResult& other);
};

namespace detail {
// One element's comparison, shared by the host loops below and the device compare
// (aipe/verify_device.cuh), so both judge an element identically.
struct ElementError {
  bool bad = false;
  bool non_finite = false;
  double abs = 0;   // |out - ref| (0 when non-finite)
  double rel = -1;  // |out - ref| / |ref|, or -1 where |ref| is within the absolute tolerance
};
AIPE_HD ElementError check_element(double o, double e, double tol_abs, double tol_rel) {
  ElementError r;
  // x - x is 0 for every finite x and NaN for NaN and +-Inf (no <cmath> call: this runs on the device too).
  if (!(o - o == 0.0) || !(e - e == 0.0)) {
    r.bad = r.non_finite = true;
    return r;
  }
  r.abs = o > e ? o - e : e - o;
  const double ae = e < 0 ? -e : e;
  r.bad = r.abs > tol_abs + tol_rel * ae;
  if (ae > tol_abs) r.rel = r.abs / ae;
  return r;
}

// The norm and the verdict from the accumulated sums: one rule for the host and device compares.
void finish_result(VerifyResult& r, double diff_sq, double ref_sq, const Tolerance& tol);

// Accumulates one element's comparison; the loop itself is inlined into each caller (verifying a
// gigabyte through an indirect call per element would cost seconds).
struct Accumulator {
  VerifyResult r;
  double diff_sq = 0, ref_sq = 0;
  void add(std::size_t i, double o, double e, const Tolerance& tol);
  VerifyResult finish(const Tolerance& tol);
};
// What the device compare accumulates over the whole output (aipe/verify_device.cuh). The maxima are
// non-negative doubles held as their bit patterns, which order like the values (so atomicMax works).
struct DeviceCompareLog {
  unsigned long long mismatches = 0;
  unsigned long long non_finite = 0;
  unsigned long long first = ~0ull;  // smallest wrong index (~0: none)
  unsigned long long max_abs_bits = 0;
  unsigned long long max_rel_bits = 0;
  double diff_sq = 0;
  double ref_sq = 0;
};

// The VerifyResult of a device compare of n elements: the totals from `log`, and the first mismatches
// (up to kFirstMismatches, in index order) as the device compare found them.
inline constexpr std::size_t kFirstMismatches = 8;
VerifyResult finish_device_compare(const DeviceCompareLog& log, std::size_t n, const Tolerance& tol,
                                   std::span<const Mismatch> first);
}  // namespace detail

// Compares n values; out(i) and ref(i) return element i as something convertible to double.
template <class OutFn, class RefFn>
VerifyResult compare_fn(std::size_t n, OutFn&& out, RefFn&& ref, const Tolerance& tol) {
  detail::Accumulator acc;
  for (std::size_t i = 0; i < n; ++i) acc.add(i, static_cast<double>(out(i)), static_cast<double>(ref(i)), tol);
  acc.r.checked = n;
  return acc.finish(tol);
}

VerifyResult compare(std::size_t n, const std::function<double(std::size_t)>& out,
                     const std::function<double(std::size_t)>& ref, const Tolerance& tol);

template <class T, class R>
VerifyResult compare(std::span<const T> out, std::span<const R> ref, const Tolerance& tol) {
  const std::size_t n = out.size() < ref.size() ? out.size() : ref.size();
  VerifyResult r = compare_fn(
      n, [&](std::size_t i) { return static_cast<double>(out[i]); },
      [&](std::size_t i) { return static_cast<double>(ref[i]); }, tol);
  if (out.size() != ref.size()) {
    r.ok = false;
    r.note = "size mismatch: " + std::to_string(out.size()) + " outputs vs " + std::to_string(ref.size()) +
             " reference values";
  }
  return r;
}

// A single scalar (a reduction's sum, a counter).
VerifyResult compare_scalar(double out, double ref, const Tolerance& tol);

// Reference for a float recurrence v <- step(v) run `iters` times: the same float operations as a device
// loop, but it stops as soon as the sequence enters a cycle of length 1 or 2 (the recurrence is
// deterministic, so every later value is then known): exact, and cheap for thousands of iterations.
// Longer cycles are simply iterated to the end.
template <class Step>
float iterate_exact(float v, int iters, Step step) {
  float prev = std::numeric_limits<float>::quiet_NaN();  // the value before v (never equal to anything)
  for (int k = 0; k < iters; ++k) {
    const float next = step(v);
    const int left = iters - k - 1;  // steps still to run after this one
    if (next == v) return next;                            // fixed point
    if (next == prev) return left % 2 == 0 ? next : v;     // 2-cycle: next, v, next, ...
    prev = v;
    v = next;
  }
  return v;
}

}  // namespace aipe
