#include "aipe/profile/compare.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "aipe/printable.hpp"

namespace aipe::profile {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::unchanged: return "unchanged";
    case Verdict::faster: return "faster";
    case Verdict::slower: return "SLOWER";
    case Verdict::now_failing: return "NOW FAILING";
    case Verdict::now_passing: return "now passing";
    case Verdict::not_timed: return "not timed";
    case Verdict::sizes_differ: return "sizes differ";
    case Verdict::only_old: return "missing in new";
    case Verdict::only_new: return "new";
  }
  return "?";
}

int Comparison::regressions() const {
  int n = 0;
  for (const auto& c : changes) n += c.regression();
  return n;
}
int Comparison::improvements() const {
  int n = 0;
  for (const auto& c : changes) n += c.verdict == Verdict::faster;
  return n;
}

namespace {
bool honest(const Result& r) { return honestly_timed(r); }
}  // namespace

Comparison compare(const RunReport& a, const RunReport& b, const CompareOptions& o) {
  // NaN would make every bar comparison false, every rung "unchanged": the gate switched off.
  if (!std::isfinite(o.threshold_pct) || o.threshold_pct < 0 || !std::isfinite(o.noise_factor) || o.noise_factor < 0)
    throw std::invalid_argument("compare: threshold and noise factor must be finite numbers >= 0");
  Comparison c;
  if (a.device && b.device && a.device->name != b.device->name)
    c.device_note = "the runs come from different GPUs (" + a.device->name + " vs " + b.device->name + ")";
  std::map<std::pair<std::string, std::string>, const Result*> newer;
  for (const auto& r : b.results) newer[{r.example, r.variant}] = &r;
  std::map<std::pair<std::string, std::string>, bool> seen;
  double log_sum = 0;
  for (const auto& ro : a.results) {
    Change ch;
    ch.example = ro.example;
    ch.variant = ro.variant;
    ch.old_ms = ro.median_ms;
    auto it = newer.find({ro.example, ro.variant});
    if (it == newer.end()) {
      ch.verdict = Verdict::only_old;
      c.changes.push_back(ch);
      continue;
    }
    seen[it->first] = true;
    const Result& rn = *it->second;
    ch.new_ms = rn.median_ms;
    if (ro.sizes != rn.sizes || ro.choices != rn.choices) {
      ch.verdict = Verdict::sizes_differ;
    } else if (ro.status == Status::passed && rn.status == Status::failed) {
      ch.verdict = Verdict::now_failing;
    } else if (ro.status == Status::failed && rn.status == Status::passed) {
      ch.verdict = Verdict::now_passing;
    } else if (!honest(ro) || !honest(rn)) {
      ch.verdict = Verdict::not_timed;
    } else {
      ch.change_pct = 100.0 * (rn.median_ms - ro.median_ms) / ro.median_ms;
      ch.noise_pct = 100.0 * o.noise_factor * std::sqrt(ro.noise * ro.noise + rn.noise * rn.noise);
      const double bar = std::max(o.threshold_pct, ch.noise_pct);
      ch.verdict = ch.change_pct > bar ? Verdict::slower : ch.change_pct < -bar ? Verdict::faster : Verdict::unchanged;
      log_sum += std::log(rn.median_ms / ro.median_ms);
      ++c.n_timed;
    }
    c.changes.push_back(ch);
  }
  for (const auto& r : b.results)
    if (!seen.count({r.example, r.variant})) {
      Change ch;
      ch.example = r.example;
      ch.variant = r.variant;
      ch.new_ms = r.median_ms;
      ch.verdict = Verdict::only_new;
      c.changes.push_back(ch);
    }
  if (c.n_timed) c.geomean_ratio = std::exp(log_sum / c.n_timed);
  return c;
}

void write_comparison(std::ostream& os, const Comparison& c, const CompareOptions& o) {
  char b[320];
  std::snprintf(b, sizeof b, "%-34s %-22s %12s %12s %9s %9s  %s\n", "example", "variant", "old", "new", "change",
                "noise", "verdict");
  os << b;
  auto ms = [](double v) {
    char t[32];
    if (v <= 0) return std::string("-");
    if (v >= 1) std::snprintf(t, sizeof t, "%.3f ms", v);
    else std::snprintf(t, sizeof t, "%.2f us", v * 1e3);
    return std::string(t);
  };
  for (const auto& ch : c.changes) {
    const bool timed = ch.verdict == Verdict::slower || ch.verdict == Verdict::faster || ch.verdict == Verdict::unchanged;
    char chg[32] = "-", noise[32] = "-";
    if (timed) {
      std::snprintf(chg, sizeof chg, "%+.1f%%", ch.change_pct);
      std::snprintf(noise, sizeof noise, "%.1f%%", ch.noise_pct);
    }
    // Names come from the files: control characters are escaped before they reach a terminal.
    std::snprintf(b, sizeof b, "%-34.120s %-22.120s %12s %12s %9s %9s  %s\n", printable(ch.example).c_str(), printable(ch.variant).c_str(),
                  ms(ch.old_ms).c_str(), ms(ch.new_ms).c_str(), chg, noise, to_string(ch.verdict));
    os << b;
  }
  if (!c.device_note.empty()) os << "warning: " << printable(c.device_note) << "\n";
  std::snprintf(b, sizeof b,
                "%d regression(s), %d improvement(s) beyond %.1f%% and %.0fx the combined noise; geomean new/old %.3f "
                "over %d timed rung(s)\n",
                c.regressions(), c.improvements(), o.threshold_pct, o.noise_factor, c.geomean_ratio, c.n_timed);
  os << b;
}

}  // namespace aipe::profile
