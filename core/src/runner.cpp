#include "aipe/runner.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

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
    std::int64_t v = o.preset == SizePreset::quick ? a.quick : o.preset == SizePreset::small ? a.small : a.def;
    if (auto it = o.sizes.find(a.name); it != o.sizes.end()) v = it->second;
    if (v < a.min || v > a.max)
      throw BadInput(info.id + ": " + a.name + "=" + std::to_string(v) + " is out of range [" + std::to_string(a.min) +
                     ", " + (a.max == INT64_MAX ? std::string("inf") : std::to_string(a.max)) + "]");
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

std::string now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

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

  std::size_t total = 0, done = 0;
  for (const RegistryEntry* e : selected)
    for (const auto& v : e->variant_names)
      if (opts.variants.empty() || std::find(opts.variants.begin(), opts.variants.end(), v) != opts.variants.end()) ++total;

  std::string lost;  // set once the CUDA context is unusable
  for (const RegistryEntry* entry : selected) {
    const ExampleInfo& info = entry->info;
    std::unique_ptr<Example> ex = entry->make();
    std::vector<Variant> variants = ex->variants();
    if (!opts.variants.empty()) {
      std::erase_if(variants, [&](const Variant& v) {
        return std::find(opts.variants.begin(), opts.variants.end(), v.name) == opts.variants.end();
      });
    }
    if (variants.empty()) continue;

    const auto sizes = resolve_sizes(info, opts);
    auto make_result = [&](const Variant& v) {
      Result r;
      r.example = info.id;
      r.variant = v.name;
      r.summary = v.summary;
      r.sizes = sizes;
      r.timing = v.timing == Timing::standard && !v.flush_l2 ? "standard_no_flush" : to_string(v.timing);
      r.component = v.component;
      return r;
    };
    auto fail_all = [&](Status st, const std::string& why) {
      for (const Variant& v : variants) {
        Result r = make_result(v);
        r.status = st;
        r.reason = why;
        rep.results.push_back(std::move(r));
        ++done;
      }
    };

    if (!lost.empty()) {
      fail_all(Status::failed, "not run: " + lost);
      continue;
    }
    if (std::string why = unmet_requirement(info.requires_, dev, gpu_count); !why.empty()) {
      fail_all(Status::skipped, why);
      continue;
    }

    Context ctx(dev, sizes, opts.seed, stream);
    Work work;
    try {
      ex->setup(ctx);
      AIPE_CUDA(cudaStreamSynchronize(stream));
      work = ex->work();
    } catch (const BadInput& e) {
      fail_all(Status::failed, std::string("bad input: ") + e.what());
      rep.bad_input = true;
      continue;
    } catch (const CudaError& e) {
      if (e.sticky()) lost = std::string("the CUDA context was lost in ") + info.id + " setup: " + e.what();
      fail_all(Status::failed, std::string("setup: ") + e.what());
      continue;
    } catch (const std::exception& e) {
      fail_all(Status::failed, std::string("setup: ") + e.what());
      continue;
    }

    for (const Variant& v : variants) {
      ++done;
      Result r = make_result(v);
      r.bytes = work.bytes;
      r.flops = work.flops;
      r.intensity = work.intensity();
      r.unit = to_string(work.unit);
      if (opts.progress) {
        char b[256];
        std::snprintf(b, sizeof b, "[%zu/%zu] %s %s", done, total, info.id.c_str(), v.name.c_str());
        opts.progress(b);
      }
      if (!lost.empty()) {
        r.status = Status::failed;
        r.reason = "not run: " + lost;
        rep.results.push_back(std::move(r));
        continue;
      }
      try {
        std::string why = unmet_requirement(v.requires_, dev, gpu_count);
        if (why.empty() && v.skip_if) why = v.skip_if();
        if (!why.empty()) {
          r.status = Status::skipped;
          r.reason = why;
          rep.results.push_back(std::move(r));
          continue;
        }
        // 1. Poison, run once, verify. No timing for a wrong answer.
        ctx.set_variant(v.name);
        ctx.poison_outputs();
        AIPE_CUDA(cudaStreamSynchronize(stream));
        const double first_ms = Timer::host_time_ms(v.launch, stream);
        AIPE_CHECK_LAUNCH();
        const VerifyResult vr = ex->verify(ctx);
        r.max_abs_error = vr.max_abs_error;
        r.max_rel_error = vr.max_rel_error;
        r.norm_rel_error = vr.norm_rel_error;
        if (!vr.ok) {
          r.status = Status::failed;
          r.reason = vr.message();
          rep.results.push_back(std::move(r));
          continue;
        }
        r.status = Status::passed;
        if (opts.verify_only) {
          rep.results.push_back(std::move(r));
          continue;
        }
        if (opts.profile_launches > 0) {  // profiled or traced: launches in named ranges, no timing
          const std::string range = opts.nvtx_range.empty() ? info.id + "/" + v.name : opts.nvtx_range;
          for (int i = 0; i < opts.profile_launches; ++i) {
            nvtxRangePushA(range.c_str());
            v.launch(stream);
            nvtxRangePop();
            AIPE_CHECK_LAUNCH();
          }
          AIPE_CUDA(cudaStreamSynchronize(stream));
          rep.results.push_back(std::move(r));
          continue;
        }
        // 2. Measure.
        std::optional<PowerSummary> power;
        if (v.timing == Timing::first_launch) {
          r.samples = 1;
          r.median_ms = r.min_ms = r.p90_ms = first_ms;
          r.stop_reason = "single";
        } else {
          StopCriteria crit = opts.stop;
          if (v.budget_s > 0) crit.budget_s = std::min(crit.budget_s, v.budget_s);
          PowerSampler sampler(power_reader);
          sampler.start();
          const Measurement m = timer.measure(v.launch, v.timing, v.blocking, crit, v.flush_l2);
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
        fill_rates(r, work, rep);
        ex->metrics(v.name, r.median_ms, r.metrics);
        // After the example's own metrics, so an example that assigns the whole map cannot drop them.
        if (power) add_power_metrics(*power, r.metrics);
      } catch (const CudaError& e) {
        r.status = Status::failed;
        r.reason = e.what();
        r.timed = false;
        if (e.sticky()) lost = "the CUDA context was lost in " + info.id + " " + v.name + ": " + e.what();
      } catch (const std::exception& e) {
        r.status = Status::failed;
        r.reason = e.what();
        r.timed = false;
      }
      rep.results.push_back(std::move(r));
    }
  }
  compute_speedups(rep.results);
  return rep;
}

}  // namespace aipe
