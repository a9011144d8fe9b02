#include "aipe/verify.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>

namespace aipe {

const char* to_string(DType t) {
  switch (t) {
    case DType::f64: return "f64";
    case DType::f32: return "f32";
    case DType::tf32: return "tf32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::fp8_e4m3: return "fp8_e4m3";
    case DType::i32: return "i32";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::exact: return "exact";
  }
  return "?";
}

Tolerance tolerance_for(DType t) {
  // Elementwise terms sit a few units of roundoff above the format's epsilon (2^-52, 2^-23, 2^-10,
  // 2^-7, 2^-3 for fp8 E4M3); the norm bound is what accumulated rounding of a long reduction or dot
  // product stays under on random inputs.
  switch (t) {
    case DType::f64: return {1e-12, 1e-12, 1e-12};
    case DType::f32: return {1e-5, 1e-5, 1e-5};
    case DType::tf32: return {1e-3, 4e-3, 2e-3};
    case DType::f16: return {1e-3, 4e-3, 2e-3};
    case DType::bf16: return {1e-2, 2e-2, 1e-2};
    case DType::fp8_e4m3: return {6e-2, 1.3e-1, 6e-2};
    case DType::i32:
    case DType::i8:
    case DType::u8:
    case DType::exact: return {0, 0, 0};
  }
  return {0, 0, 0};
}

namespace detail {

void Accumulator::add(std::size_t i, double o, double e, const Tolerance& tol) {
  const ElementError x = check_element(o, e, tol.abs, tol.rel);
  if (x.non_finite) {
    ++r.non_finite;
  } else {
    diff_sq += x.abs * x.abs;
    ref_sq += e * e;
    r.max_abs_error = std::max(r.max_abs_error, x.abs);
    r.max_rel_error = std::max(r.max_rel_error, x.rel);
  }
  if (x.bad) {
    ++r.mismatches;
    if (r.first.size() < 8) r.first.push_back({i, e, o});
  }
}

VerifyResult Accumulator::finish(const Tolerance& tol) {
  finish_result(r, diff_sq, ref_sq, tol);
  return r;
}

void finish_result(VerifyResult& r, double diff_sq, double ref_sq, const Tolerance& tol) {
  r.norm_rel_error = ref_sq > 0 ? std::sqrt(diff_sq / ref_sq) : std::sqrt(diff_sq);
  r.ok = r.mismatches == 0 && r.non_finite == 0 && r.norm_rel_error <= tol.norm_rel + (ref_sq > 0 ? 0 : tol.abs);
}

VerifyResult finish_device_compare(const DeviceCompareLog& log, std::size_t n, const Tolerance& tol,
                                   std::span<const Mismatch> first) {
  VerifyResult r;
  r.checked = n;
  r.mismatches = log.mismatches;
  r.non_finite = log.non_finite;
  r.max_abs_error = std::bit_cast<double>(log.max_abs_bits);
  r.max_rel_error = std::bit_cast<double>(log.max_rel_bits);
  r.first.assign(first.begin(), first.begin() + std::min(first.size(), kFirstMismatches));
  finish_result(r, log.diff_sq, log.ref_sq, tol);
  return r;
}

}  // namespace detail

VerifyResult compare(std::size_t n, const std::function<double(std::size_t)>& out,
                     const std::function<double(std::size_t)>& ref, const Tolerance& tol) {
  return compare_fn(n, out, ref, tol);
}

VerifyResult compare_scalar(double out, double ref, const Tolerance& tol) {
  return compare(1, [&](std::size_t) { return out; }, [&](std::size_t) { return ref; }, tol);
}

void VerifyResult::merge(const VerifyResult& o) {
  ok = ok && o.ok;
  checked += o.checked;
  mismatches += o.mismatches;
  non_finite += o.non_finite;
  max_abs_error = std::max(max_abs_error, o.max_abs_error);
  max_rel_error = std::max(max_rel_error, o.max_rel_error);
  norm_rel_error = std::max(norm_rel_error, o.norm_rel_error);
  for (const auto& m : o.first)
    if (first.size() < 8) first.push_back(m);
  if (!o.note.empty()) note += (note.empty() ? "" : "; ") + o.note;
}

std::string VerifyResult::message() const {
  char buf[256];
  std::string m;
  if (mismatches > 0) {
    std::snprintf(buf, sizeof buf, "%zu of %zu elements wrong", mismatches, checked);
    m = buf;
    if (non_finite > 0) {
      std::snprintf(buf, sizeof buf, " (%zu NaN/Inf)", non_finite);
      m += buf;
    }
    for (std::size_t k = 0; k < first.size() && k < 3; ++k) {
      std::snprintf(buf, sizeof buf, "%s[%zu]: expected %.9g, got %.9g", k == 0 ? ", first at " : "; ",
                    first[k].index, first[k].expected, first[k].actual);
      m += buf;
    }
  }
  if (!ok && mismatches == 0) {
    std::snprintf(buf, sizeof buf, "||out-ref||/||ref|| = %.3g over the bound", norm_rel_error);
    m = buf;
  }
  if (!note.empty()) m += (m.empty() ? "" : "; ") + note;
  if (m.empty()) {
    std::snprintf(buf, sizeof buf, "%zu elements within tolerance", checked);
    m = buf;
  }
  return m;
}

}  // namespace aipe
