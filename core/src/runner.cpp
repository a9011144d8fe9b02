#include "aipe/runner.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nvtx3/nvToolsExt.h>

#include "aipe/buffer.hpp"
#include "aipe/ceilings.hpp"
#include "aipe/check.hpp"
#include "aipe/measure.hpp"
#include "aipe/power.hpp"
#include "aipe/version.hpp"

namespace aipe {

StopCriteria stop_criteria_for(SizePreset preset) {
  StopCriteria c;
  switch (preset) {
    case SizePreset::def: break;  // 10+ samples, >= 0.1 s, noise <= 1 %, 2 s budget
    case SizePreset::quick:
      c.min_samples = 5;
      c.min_time_s = 0.01;
      c.max_noise = 0.05;
      c.budget_s = 0.3;
      break;
    case SizePreset::small:
      c.min_samples = 3;
      c.max_samples = 20;
      c.min_time_s = 0;
      c.max_noise = 1.0;
      c.budget_s = 0.05;
      break;
  }
  return c;
}

std::map<std::string, std::int64_t> resolve_sizes(const ExampleInfo& info, const RunOptions& o) {
  std::map<std::string, std::int64_t> s;
  for (const Axis& a : info.axes) {
    if (a.is_choice()) continue;  // resolve_choices
    std::int64_t v = a.preset(o.preset);
    if (auto it = o.sizes.find(a.name); it != o.sizes.end()) v = it->second;
    if (v < a.min || v > a.max)
      throw BadInput(info.id + ": " + a.name + "=" + std::to_string(v) + " is out of range [" + std::to_string(a.min) +
                     ", " + (a.max == INT64_MAX ? std::string("inf") : std::to_string(a.max)) + "]");
    s[a.name] = v;
  }
  return s;
}

std::map<std::string, std::string> resolve_choices(const ExampleInfo& info, const RunOptions& o) {
  std::map<std::string, std::string> s;
  for (const Axis& a : info.axes) {
    if (!a.is_choice()) continue;
    std::string v = a.choices.at(static_cast<std::size_t>(a.preset(o.preset)));
    if (auto it = o.choices.find(a.name); it != o.choices.end()) {
      if (std::find(a.choices.begin(), a.choices.end(), it->second) == a.choices.end())
        throw BadInput(info.id + ": " + a.name + "=" + it->second + " is not a valid choice; " + a.name +
                       " is one of: " + a.choice_list());
      v = it->second;
    }
    s[a.name] = v;
  }
  return s;
}

std::string unmet_requirement(const Requirements& r, const DeviceInfo& d, int gpu_count) {
  char b[200];
  if (r.min_cc > 0 && d.cc() < r.min_cc) {
    std::snprintf(b, sizeof b, "needs compute capability %d.%d or newer; %s is %d.%d", r.min_cc / 10, r.min_cc % 10,
                  d.name.c_str(), d.cc_major, d.cc_minor);
    return b;
  }
  if (r.sm90a) {
    if (!AIPE_HAVE_SM90A) return "needs sm_90a code (wgmma/setmaxnreg); this build targets " + std::string(cuda_architectures()) +
                                 " (configure with -DCMAKE_CUDA_ARCHITECTURES=90a)";
    if (d.cc() != 90) return "needs an sm_90a (Hopper) GPU; " + d.name + " is sm_" + std::to_string(d.cc());
  }
  if (r.min_gpus > gpu_count) {
    std::snprintf(b, sizeof b, "needs %d GPUs; this machine has %d", r.min_gpus, gpu_count);
    return b;
  }
  if (r.min_free_bytes > 0) {
    std::size_t free_b = 0, total_b = 0;
    AIPE_CUDA(cudaMemGetInfo(&free_b, &total_b));
    if (free_b < r.min_free_bytes) {
      std::snprintf(b, sizeof b, "needs %.2f GiB of free device memory; %.2f GiB free", r.min_free_bytes / 1073741824.0,
                    free_b / 1073741824.0);
      return b;
    }
  }
  return "";
}

namespace {

void fill_rates(Result& r, const Work& w, const RunReport& rep) {
  const double s = r.median_ms / 1e3;
  const Rates spec = rates_for(w, s, rep.spec.dram_gbps, peak_tflops(rep.spec, w.unit));
  r.gbps = spec.gbps;
  r.tflops = spec.tflops;
  r.pct_of_spec = spec.pct_of_roofline;
  r.bound = spec.bound;
  if (rep.measured) {
    const double mt = peak_tflops(*rep.measured, w.unit);
    const bool have = w.flops > 0 && w.unit != ComputeUnit::none ? mt > 0 && rep.measured->dram_gbps > 0
                                                                  : rep.measured->dram_gbps > 0;
    if (have) r.pct_of_measured = rates_for(w, s, rep.measured->dram_gbps, mt).pct_of_roofline;
  }
}

// What every step of the run shares.
struct RunState {
  const RunOptions& opts;
  RunReport& rep;
  const DeviceInfo& dev;
  int gpu_count = 0;
  cudaStream_t stream = nullptr;
  Timer& timer;
  const PowerReader& power_reader;
  std::size_t total = 0, done = 0;
  std::string lost;  // set once the CUDA context is unusable
};

bool is_selected(const RunOptions& opts, const std::string& variant) {
  return opts.variants.empty() || std::find(opts.variants.begin(), opts.variants.end(), variant) != opts.variants.end();
}

// 1. Select: the rungs of an example that --variant asks for, in ladder order.
std::vector<Variant> select_variants(Example& ex, const RunOptions& opts) {
  std::vector<Variant> variants = ex.variants();
  std::erase_if(variants, [&](const Variant& v) { return !is_selected(opts, v.name); });
  return variants;
}

std::size_t count_selected(const std::vector<const RegistryEntry*>& selected, const RunOptions& opts) {
  std::size_t total = 0;
  for (const RegistryEntry* e : selected)
    for (const auto& v : e->variant_names) total += is_selected(opts, v) ? 1 : 0;
  return total;
}

// A result row for a variant at the example's sizes, before it has run.
Result new_row(const ExampleInfo& info, const Context& ctx, const Variant& v) {
  Result r;
  r.example = info.id;
  r.variant = v.name;
  r.summary = v.summary;
  r.sizes = ctx.sizes();
  r.choices = ctx.choices();
  r.timing = v.timing == Timing::standard && !v.flush_l2 ? "standard_no_flush" : to_string(v.timing);
  r.component = v.component;
  return r;
}

// 2. Set up: the example's requirements, then Example::setup. Returns the work model, or nothing after
// recording why every selected rung did not run.
std::optional<Work> set_up(RunState& st, const ExampleInfo& info, Example& ex, Context& ctx,
                           const std::vector<Variant>& variants) {
  auto fail_all = [&](Status status, const std::string& why) {
    for (const Variant& v : variants) {
      Result r = new_row(info, ctx, v);
      r.status = status;
      r.reason = why;
      st.rep.results.push_back(std::move(r));
      ++st.done;
    }
    return std::nullopt;
  };
  if (!st.lost.empty()) return fail_all(Status::failed, "not run: " + st.lost);
  if (std::string why = unmet_requirement(info.requires_, st.dev, st.gpu_count); !why.empty())
    return fail_all(Status::skipped, why);
  try {
    ex.setup(ctx);
    AIPE_CUDA(cudaStreamSynchronize(st.stream));
    return ex.work();
  } catch (const BadInput& e) {
    st.rep.bad_input = true;
    return fail_all(Status::failed, std::string("bad input: ") + e.what());
  } catch (const CudaError& e) {
    if (e.sticky()) st.lost = std::string("the CUDA context was lost in ") + info.id + " setup: " + e.what();
    return fail_all(Status::failed, std::string("setup: ") + e.what());
  } catch (const std::exception& e) {
    return fail_all(Status::failed, std::string("setup: ") + e.what());
  }
}

// 3. Verify: poison the outputs, prepare, launch once, compare. No timing for a wrong answer. Returns
// the host time of that launch (what Timing::first_launch reports).
double verify_variant(RunState& st, Example& ex, Context& ctx, const Variant& v, Result& r) {
  ctx.set_variant(v.name);
  ctx.poison_outputs();
  if (v.prepare) v.prepare(st.stream);
  AIPE_CUDA(cudaStreamSynchronize(st.stream));
  const double first_ms = Timer::host_time_ms(v.launch, st.stream);
  AIPE_CHECK_LAUNCH();
  const VerifyResult vr = ex.verify(ctx);
  r.max_abs_error = vr.max_abs_error;
  r.max_rel_error = vr.max_rel_error;
  r.norm_rel_error = vr.norm_rel_error;
  r.status = vr.ok ? Status::passed : Status::failed;
  if (!vr.ok) r.reason = vr.message();
  return first_ms;
}

// For `aipe profile` and `aipe trace`: the launches in named ranges, untimed.
void profile_variant(RunState& st, const ExampleInfo& info, const Variant& v) {
  const std::string range = st.opts.nvtx_range.empty() ? info.id + "/" + v.name : st.opts.nvtx_range;
  for (int i = 0; i < st.opts.profile_launches; ++i) {
    if (v.prepare) v.prepare(st.stream);
    nvtxRangePushA(range.c_str());
    v.launch(st.stream);
    nvtxRangePop();
    AIPE_CHECK_LAUNCH();
  }
  AIPE_CUDA(cudaStreamSynchronize(st.stream));
}

// 4. Measure: samples (or the verification launch's host time for Timing::first_launch), rates against
// the ceilings, the rung's own metrics and the power readings.
void measure_variant(RunState& st, const Variant& v, const Work& work, double first_ms, Result& r) {
  std::optional<PowerSummary> power;
  if (v.timing == Timing::first_launch) {
    r.samples = 1;
    r.median_ms = r.min_ms = r.p90_ms = first_ms;
    r.stop_reason = "single";
  } else {
    StopCriteria crit = st.opts.stop;
    if (v.budget_s > 0) crit.budget_s = std::min(crit.budget_s, v.budget_s);
    PowerSampler sampler(st.power_reader);
    sampler.start();
    const Measurement m = st.timer.measure(v, crit);
    power = sampler.stop();
    r.samples = m.time_ms.n;
    r.median_ms = m.time_ms.median;
    r.min_ms = m.time_ms.min;
    r.p90_ms = m.time_ms.p90;
    r.noise = m.time_ms.noise;
    r.stop_reason = m.stop_reason;
    r.note = m.warning;
  }
  r.timed = true;
  fill_rates(r, work, st.rep);
  if (v.metrics) v.metrics(r.median_ms, r.metrics);
  // After the rung's own metrics, so one that assigns the whole map cannot drop them.
  if (power) add_power_metrics(*power, r.metrics);
}

// One rung: requirements, verify, then measure or profile. Records its row.
void run_variant(RunState& st, const ExampleInfo& info, Example& ex, Context& ctx, const Variant& v, const Work& work) {
  ++st.done;
  Result r = new_row(info, ctx, v);
  r.bytes = work.bytes;
  r.flops = work.flops;
  r.intensity = work.intensity();
  r.unit = to_string(work.unit);
  if (st.opts.progress) {
    char b[256];
    std::snprintf(b, sizeof b, "[%zu/%zu] %s %s", st.done, st.total, info.id.c_str(), v.name.c_str());
    st.opts.progress(b);
  }
  if (!st.lost.empty()) {
    r.status = Status::failed;
    r.reason = "not run: " + st.lost;
    st.rep.results.push_back(std::move(r));
    return;
  }
  try {
    std::string why = unmet_requirement(v.requires_, st.dev, st.gpu_count);
    if (why.empty() && v.skip_if) why = v.skip_if();
    if (!why.empty()) {
      r.status = Status::skipped;
      r.reason = why;
    } else {
      const double first_ms = verify_variant(st, ex, ctx, v, r);
      if (r.status == Status::passed && !st.opts.verify_only) {
        if (st.opts.profile_launches > 0) profile_variant(st, info, v);
        else measure_variant(st, v, work, first_ms, r);
      }
    }
  } catch (const CudaError& e) {
    r.status = Status::failed;
    r.reason = e.what();
    r.timed = false;
    if (e.sticky()) st.lost = "the CUDA context was lost in " + info.id + " " + v.name + ": " + e.what();
  } catch (const std::exception& e) {
    r.status = Status::failed;
    r.reason = e.what();
    r.timed = false;
  }
  st.rep.results.push_back(std::move(r));
}

}  // namespace

RunReport run_examples(const std::vector<const RegistryEntry*>& selected, const RunOptions& opts) {
  RunReport rep;
  rep.aipe_version = version();
  rep.git_revision = git_revision();
  rep.timestamp = now_iso8601();
  rep.seed = opts.seed;

  AIPE_CUDA(cudaSetDevice(opts.device));
  int gpu_count = 0;
  AIPE_CUDA(cudaGetDeviceCount(&gpu_count));
  rep.device = query_device(opts.device);
  const DeviceInfo& dev = *rep.device;
  rep.spec = derive_spec_peaks(dev);
  rep.measured = load_measured_peaks(dev.uuid, &rep.measured_source);

  Stream stream;
  Timer timer(dev, stream);
  // SM clock, power and throttle reasons while each variant is measured; empty where NVML is absent.
  const PowerReader power_reader = nvml_power_reader(dev);
  RunState st{.opts = opts,
              .rep = rep,
              .dev = dev,
              .gpu_count = gpu_count,
              .stream = stream,
              .timer = timer,
              .power_reader = power_reader,
              .total = count_selected(selected, opts),
              .done = 0,
              .lost = ""};

  for (const RegistryEntry* entry : selected) {
    const ExampleInfo& info = entry->info;
    std::unique_ptr<Example> ex = entry->make();
    const std::vector<Variant> variants = select_variants(*ex, opts);
    if (variants.empty()) continue;
    Context ctx(dev, resolve_sizes(info, opts), opts.seed, stream, resolve_choices(info, opts));
    const std::optional<Work> work = set_up(st, info, *ex, ctx, variants);
    if (!work) continue;
    for (const Variant& v : variants) run_variant(st, info, *ex, ctx, v, *work);
  }
  compute_speedups(rep.results);
  return rep;
}

}  // namespace aipe
