// The measurements of `aipe peak` (host side): DRAM, caches and shared memory, latency, FP32/FP64,
// host link, peer links, and the working-set sweep. Tensor cores are in gemm.cpp.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <iterator>
#include <numeric>
#include <optional>
#include <vector>

#include "aipe/check.hpp"
#include "aipe/random.hpp"
#include "aipe/version.hpp"
#include "internal.hpp"
#include "kernels.hpp"

namespace aipe::peak {

namespace {

using kern::Hint;
using kern::StreamConfig;

constexpr std::uint64_t MiB = 1ull << 20;
constexpr std::uint64_t GiB = 1ull << 30;

std::uint64_t free_bytes() {
  std::size_t f = 0, t = 0;
  AIPE_CUDA(cudaMemGetInfo(&f, &t));
  return f;
}

// Compares `windows` windows of `window` bytes of a device buffer with what `expect` says.
bool check_windows(const void* dev, std::size_t bytes, const std::function<void(std::size_t off, std::size_t len, unsigned char* out)>& expect,
                   std::string* why) {
  const std::size_t window = std::min<std::size_t>(bytes, 64 * 1024);
  const std::size_t offs[] = {0, (bytes / 2) & ~std::size_t(15), bytes - window};
  std::vector<unsigned char> got(window), want(window);
  for (std::size_t off : offs) {
    AIPE_CUDA(cudaMemcpy(got.data(), static_cast<const char*>(dev) + off, window, cudaMemcpyDeviceToHost));
    expect(off, window, want.data());
    if (std::memcmp(got.data(), want.data(), window) != 0) {
      *why = "wrong bytes in the window at offset " + std::to_string(off);
      return false;
    }
  }
  return true;
}

std::vector<StreamConfig> stream_configs(bool quick, const std::vector<Hint>& hints) {
  std::vector<StreamConfig> v;
  const std::vector<int> threads = quick ? std::vector<int>{512, 1024} : std::vector<int>{256, 512, 1024};
  const std::vector<int> unrolls = {4, 8};
  for (Hint h : hints) {
    if (quick && h == Hint::plain && hints.size() > 1) continue;
    for (int t : threads)
      for (int u : unrolls) v.push_back({t, 0, u, h, true});
    // One chunk per block, no grid-stride loop: the other common style (the hardware block scheduler
    // hands out chunks as blocks retire).
    for (int t : quick ? std::vector<int>{256} : std::vector<int>{128, 256, 512})
      for (int u : quick ? std::vector<int>{4} : std::vector<int>{2, 4, 8}) v.push_back({t, 0, u, h, false});
  }
  return v;
}

const char* kTimerMethod = "Timer: warm-up, L2 flushed before each sample, CUDA events, median.";

// ---- DRAM ----
void measure_dram(Run& run) {
  const DeviceInfo& d = run.dev;
  std::uint64_t bytes = run.opt.quick ? 512 * MiB : 1 * GiB;
  bytes = std::min<std::uint64_t>(bytes, (free_bytes() / 4) & ~(MiB - 1));
  if (bytes < 64 * MiB) {
    run.add(run.skipped("dram", "dram_copy_sm", "DRAM copy", "GB/s", "less than 256 MiB of device memory free"));
    return;
  }
  const std::size_t n_vec = bytes / 16;
  DeviceBuffer<unsigned char> src(bytes), dst(bytes);
  fill_uniform(reinterpret_cast<float*>(src.get()), bytes / 4, 0x5eedull, 0.0f, 1.0f, run.stream);
  DeviceBuffer<float> partial(1 << 22);
  auto src_window = [&](std::size_t off, std::size_t len, unsigned char* out) {
    AIPE_CUDA(cudaMemcpy(out, src.get() + off, len, cudaMemcpyDeviceToHost));
  };
  const std::string size = format_bytes(bytes);

  // Copy through SM kernels: try the configurations, keep the best.
  run.progress("DRAM copy, SM kernels (" + size + ")");
  double best_ms = 1e30;
  StreamConfig best{};
  auto copy_cfgs = stream_configs(run.opt.quick, {Hint::plain, Hint::streaming, Hint::nc_l2_256, Hint::evict_first});
  // The technique the copy ladder's sweep chose, always among those tried.
  copy_cfgs.insert(copy_cfgs.begin(), kern::kCopyWinner);
  copy_cfgs.insert(copy_cfgs.begin() + 1, std::begin(kern::kCopyPipelined), std::end(kern::kCopyPipelined));
  for (StreamConfig c : copy_cfgs) {
    if (c.persistent) c.blocks_per_sm = kern::resident_blocks(kern::Op::copy, c);
    const double ms = run.median_ms([&, c](cudaStream_t s) { kern::copy(c, src.get(), dst.get(), n_vec, d.sm_count, s); });
    if (ms < best_ms) best_ms = ms, best = c;
  }
  std::string why;
  AIPE_CUDA(cudaMemset(dst.get(), 0xFF, bytes));
  kern::copy(best, src.get(), dst.get(), n_vec, d.sm_count, run.stream);
  AIPE_CUDA(cudaStreamSynchronize(run.stream));
  const bool copy_ok = check_windows(dst.get(), bytes, src_window, &why);
  std::string best_desc = best.describe() + ", grid " + std::to_string(kern::grid_for(best, n_vec, d.sm_count));

  // The same copy through the TMA (cp.async.bulk): each configuration is checked before it is timed.
  int tried = static_cast<int>(copy_cfgs.size());
  std::string bulk_note;
  if (d.cc() >= 90) {
    DeviceBuffer<int> err(1);
    std::vector<kern::BulkConfig> bulk = {{4, 16 * 1024, 0}, {8, 16 * 1024, 0}, {4, 32 * 1024, 0}, {6, 32 * 1024, 0}};
    if (run.opt.quick) bulk.resize(2);
    for (kern::BulkConfig b : bulk) {
      b.blocks_per_sm = kern::bulk_resident_blocks(b);
      AIPE_CUDA(cudaMemset(dst.get(), 0xFF, bytes));
      AIPE_CUDA(cudaMemset(err.get(), 0, sizeof(int)));
      kern::bulk_copy(b, src.get(), dst.get(), bytes, d.sm_count, err.get(), run.stream);
      AIPE_CUDA(cudaStreamSynchronize(run.stream));
      int e = 0;
      AIPE_CUDA(cudaMemcpy(&e, err.get(), sizeof e, cudaMemcpyDeviceToHost));
      std::string bwhy;
      if (e != 0 || !check_windows(dst.get(), bytes, src_window, &bwhy)) {
        bulk_note = "; " + b.describe() + " rejected (" + (e ? "mbarrier wait timed out" : bwhy) + ")";
        continue;
      }
      ++tried;
      const double ms = run.median_ms([&, b](cudaStream_t s) { kern::bulk_copy(b, src.get(), dst.get(), bytes, d.sm_count, err.get(), s); });
      if (ms < best_ms) best_ms = ms, best_desc = b.describe() + ", grid " + std::to_string(b.blocks_per_sm * d.sm_count);
    }
  }

  Row sm;
  sm.group = "dram";
  sm.name = "dram_copy_sm";
  sm.what = "DRAM copy, SM kernel";
  sm.unit = "GB/s";
  sm.value = gbps(2.0 * bytes, best_ms);
  sm.spec = run.spec.dram_gbps;
  sm.spec_basis = "2 (DDR) x memory clock x bus width / 8.";
  sm.config = best_desc;
  sm.method = "dst = src over " + size + " buffers; bytes = read + written (2 x " + size + "); best median of " +
              std::to_string(tried) +
              " configurations: SM load/store kernels (threads, unroll = 16-byte loads in flight per thread, cache hint, "
              "persistent grid of occupancy x SMs or one chunk per block) and TMA bulk copies (stages x tile, one "
              "thread per block); each checked in sampled windows. " + kTimerMethod + bulk_note;
  sm.extra = {{"bytes", 2.0 * bytes}, {"median_ms", best_ms}, {"configs_tried", double(tried)}};
  if (!copy_ok) sm.skipped = true, sm.reason = "verification failed: " + why;

  // Copy engine.
  run.progress("DRAM copy, cudaMemcpy D2D");
  const double ce_ms = run.median_ms([&](cudaStream_t s) {
    AIPE_CUDA(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, s));
  });
  Row ce = sm;
  ce.name = "dram_copy_memcpy";
  ce.what = "DRAM copy, cudaMemcpy D2D";
  ce.value = gbps(2.0 * bytes, ce_ms);
  ce.config = "cudaMemcpyAsync(DeviceToDevice)";
  ce.method = "cudaMemcpyAsync device-to-device over the same " + size + " buffers; bytes = read + written. " + kTimerMethod;
  ce.extra = {{"bytes", 2.0 * bytes}, {"median_ms", ce_ms}};
  ce.skipped = false;
  ce.reason.clear();
  sm.extra["sm_over_memcpy"] = ce_ms / best_ms;
  run.add(sm);
  run.add(ce);

  // Read-only: a sum, so no load can be dropped.
  run.progress("DRAM read (reduction)");
  best_ms = 1e30;
  const auto read_cfgs = stream_configs(run.opt.quick, {Hint::plain, Hint::nc_l2_256});
  for (StreamConfig c : read_cfgs) {
    if (c.persistent) c.blocks_per_sm = kern::resident_blocks(kern::Op::read, c);
    if (kern::grid_for(c, n_vec, d.sm_count) > partial.size()) continue;
    const double ms = run.median_ms([&, c](cudaStream_t s) { kern::read(c, src.get(), n_vec, partial.get(), d.sm_count, s); });
    if (ms < best_ms) best_ms = ms, best = c;
  }
  kern::read(best, src.get(), n_vec, partial.get(), d.sm_count, run.stream);
  std::vector<float> parts(kern::grid_for(best, n_vec, d.sm_count));
  AIPE_CUDA(cudaMemcpyAsync(parts.data(), partial.get(), parts.size() * 4, cudaMemcpyDeviceToHost, run.stream));
  AIPE_CUDA(cudaStreamSynchronize(run.stream));
  const double sum = std::accumulate(parts.begin(), parts.end(), 0.0);
  const double expect = 0.5 * (bytes / 4.0);  // floats uniform in [0, 1): mean 1/2
  Row rd;
  rd.group = "dram";
  rd.name = "dram_read_sm";
  rd.what = "DRAM read, SM kernel (sum)";
  rd.unit = "GB/s";
  rd.value = gbps(double(bytes), best_ms);
  rd.spec = run.spec.dram_gbps;
  rd.spec_basis = sm.spec_basis;
  rd.config = best.describe();
  rd.method = "sum of every float of " + size + " (one partial per block, so no load can be dropped); bytes = read. "
              "Checked: the sum is within 0.1% of n/2 (inputs uniform in [0, 1)). " + std::string(kTimerMethod);
  rd.extra = {{"bytes", double(bytes)}, {"median_ms", best_ms}, {"sum_over_expected", sum / expect}};
  if (!(std::fabs(sum / expect - 1.0) < 1e-3))
    rd.skipped = true, rd.reason = "verification failed: sum " + std::to_string(sum) + ", expected about " + std::to_string(expect);
  run.add(rd);

  // Write-only.
  run.progress("DRAM write");
  best_ms = 1e30;
  const auto write_cfgs = stream_configs(run.opt.quick, {Hint::plain, Hint::streaming});
  for (StreamConfig c : write_cfgs) {
    if (c.persistent) c.blocks_per_sm = kern::resident_blocks(kern::Op::write, c);
    const double ms = run.median_ms([&, c](cudaStream_t s) { kern::write(c, dst.get(), n_vec, 0xA1B2C3D4u, d.sm_count, s); });
    if (ms < best_ms) best_ms = ms, best = c;
  }
  AIPE_CUDA(cudaMemset(dst.get(), 0xFF, bytes));
  kern::write(best, dst.get(), n_vec, 0xA1B2C3D4u, d.sm_count, run.stream);
  AIPE_CUDA(cudaStreamSynchronize(run.stream));
  const bool write_ok = check_windows(dst.get(), bytes, [](std::size_t off, std::size_t len, unsigned char* out) {
    for (std::size_t v = 0; v < len / 16; ++v) {
      const auto i = static_cast<std::uint32_t>(off / 16 + v);
      const std::uint32_t w[4] = {i, 0xA1B2C3D4u, ~i, i ^ 0xA1B2C3D4u};
      std::memcpy(out + 16 * v, w, 16);
    }
  }, &why);
  Row wr = rd;
  wr.name = "dram_write_sm";
  wr.what = "DRAM write, SM kernel";
  wr.value = gbps(double(bytes), best_ms);
  wr.config = best.describe();
  wr.method = "a pattern written over " + size + "; bytes = written. Checked in sampled windows. " + std::string(kTimerMethod);
  wr.extra = {{"bytes", double(bytes)}, {"median_ms", best_ms}};
  wr.skipped = !write_ok;
  wr.reason = write_ok ? "" : "verification failed: " + why;
  run.add(wr);
}

// ---- L2 and shared memory ----
void measure_cache(Run& run) {
  const DeviceInfo& d = run.dev;
  const int threads = 512;
  const unsigned grid = static_cast<unsigned>(d.sm_count * std::max(1, d.max_threads_per_sm / threads));
  {
    run.progress("L2 read bandwidth");
    const std::uint64_t ws = std::max<std::uint64_t>((d.l2_bytes / 4) & ~std::uint64_t(4095), 1 * MiB);
    DeviceBuffer<unsigned char> buf(ws);
    fill_uniform(reinterpret_cast<float*>(buf.get()), ws / 4, 7, 0.f, 1.f, run.stream);
    DeviceBuffer<float> partial(grid);
    const std::uint32_t n_vec = static_cast<std::uint32_t>(ws / 16);
    const std::uint64_t target = run.opt.quick ? 1 * GiB : 4 * GiB;
    const std::uint64_t chunk_bytes = 4ull * threads * 16;
    const auto chunks = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, target / grid / chunk_bytes));
    const double bytes = double(grid) * chunks * chunk_bytes;
    const double ms = run.median_ms(
        [&](cudaStream_t s) { kern::sweep_read(buf.get(), n_vec, grid, threads, chunks, partial.get(), s); }, Timing::hot_l2);
    Row r;
    r.group = "cache";
    r.name = "l2_read";
    r.what = "L2 read (" + format_bytes(ws) + " set)";
    r.unit = "GB/s";
    r.value = gbps(bytes, ms);
    r.reason = "no data-sheet L2 bandwidth";
    r.config = std::to_string(grid) + " blocks x " + std::to_string(threads) + " thr, 4 x 16 B loads in flight";
    r.method = "every block reads a rotated window of a working set of L2/4 (resident in L2 across samples, L1 too small "
               "to hold it), " + format_bytes(std::uint64_t(bytes)) + " per launch; bytes = bytes loaded by the SMs. "
               "Timer without the L2 flush (hot_l2), events, median.";
    r.extra = {{"bytes", bytes}, {"median_ms", ms}, {"working_set_bytes", double(ws)}};
    run.add(r);
  }
  {
    run.progress("shared-memory bandwidth");
    const int t = 1024;
    const unsigned g = static_cast<unsigned>(d.sm_count * std::max(1, d.max_threads_per_sm / t));
    const int iters = run.opt.quick ? 2000 : 8000;
    DeviceBuffer<std::uint32_t> out(std::size_t(g) * t);
    const double ms = run.median_ms([&](cudaStream_t s) { kern::smem_read(g, t, iters, out.get(), s); }, Timing::hot_l2);
    const double bytes = double(g) * t * iters * 8 * 16;
    Row r;
    r.group = "cache";
    r.name = "smem_read";
    r.what = "shared memory read";
    r.unit = "GB/s";
    r.value = gbps(bytes, ms);
    r.spec = smem_spec_gbps(d);
    r.spec_basis = "32 banks x 4 B per clock per SM x SMs x max SM clock.";
    r.config = std::to_string(g) + " blocks x " + std::to_string(t) + " thr, 16-byte conflict-free loads";
    r.method = "each thread reads " + std::to_string(iters * 8) +
               " 16-byte vectors from a 32 KiB shared buffer (a warp reads 512 contiguous bytes: 4 conflict-free "
               "wavefronts), XOR-folded so none is dropped; bytes = grid x threads x loads x 16. Timer, events, median.";
    r.extra = {{"bytes", bytes}, {"median_ms", ms}};
    run.add(r);
  }
}

// ---- latency (pointer chase) ----
std::vector<std::uint32_t> sattolo_cycle(std::size_t n, std::uint64_t seed) {
  // Sattolo's algorithm: a uniformly random permutation that is a single cycle, so the chase
  // visits every line before it repeats.
  std::vector<std::uint32_t> p(n);
  std::iota(p.begin(), p.end(), 0u);
  std::uint64_t s = seed;
  for (std::size_t i = n - 1; i > 0; --i) {
    s = splitmix64(s);
    const std::size_t j = s % i;  // j in [0, i)
    std::swap(p[i], p[j]);
  }
  return p;
}

struct ChaseResult {
  double cycles = 0, ns = 0;
};

ChaseResult chase_once(Run& run, void* buf, std::uint64_t ws, int warm, int hops, kern::ChaseLoad ld) {
  const std::size_t line = 128;
  const std::size_t lines = ws / line;
  const auto perm = sattolo_cycle(lines, 0xC4A5E ^ ws);
  DeviceBuffer<std::uint32_t> perm_dev(lines);
  AIPE_CUDA(cudaMemcpy(perm_dev.get(), perm.data(), lines * 4, cudaMemcpyHostToDevice));
  kern::build_chase(buf, line, perm_dev.get(), lines, run.stream);
  DeviceBuffer<unsigned long long> out(3);
  std::vector<double> cyc, ns;
  // Without a warm pass the set is meant to come from DRAM: every launch walks the same first hops,
  // so the L2 is flushed before each, or the second launch would find them in L2.
  std::optional<L2Flush> flush;
  if (warm == 0) flush.emplace(run.dev.l2_bytes);
  for (int rep = 0; rep < 3; ++rep) {
    if (flush) flush->flush(run.stream);
    kern::chase(buf, warm, hops, ld, out.get(), run.stream);
    unsigned long long h[3];
    AIPE_CUDA(cudaMemcpyAsync(h, out.get(), sizeof h, cudaMemcpyDeviceToHost, run.stream));
    AIPE_CUDA(cudaStreamSynchronize(run.stream));
    cyc.push_back(double(h[0]) / hops);
    ns.push_back(double(h[1]) / hops);
  }
  std::sort(cyc.begin(), cyc.end());
  std::sort(ns.begin(), ns.end());
  return {cyc[1], ns[1]};
}

void measure_latency(Run& run) {
  struct Level {
    const char* name;
    const char* what;
    std::uint64_t ws;
    kern::ChaseLoad ld;
    bool warm;
    int hops;
  };
  const std::uint64_t dram_ws = std::min<std::uint64_t>(run.opt.quick ? 512 * MiB : 1 * GiB, (free_bytes() / 4) & ~(MiB - 1));
  const Level levels[] = {
      {"latency_l1", "L1 hit latency", 16 * 1024, kern::ChaseLoad::ca, true, 20000},
      {"latency_l2", "L2 hit latency", std::min<std::uint64_t>(8 * MiB, std::max<std::uint64_t>(run.dev.l2_bytes / 4, 1 * MiB)),
       kern::ChaseLoad::cg, true, 20000},
      {"latency_dram", "DRAM latency", dram_ws, kern::ChaseLoad::cg, false, run.opt.quick ? 5000 : 20000},
  };
  for (const Level& l : levels) {
    run.progress(l.what);
    DeviceBuffer<unsigned char> buf(l.ws);
    const int warm = l.warm ? static_cast<int>(2 * (l.ws / 128)) : 0;
    const ChaseResult c = chase_once(run, buf.get(), l.ws, warm, l.hops, l.ld);
    Row r;
    r.group = "latency";
    r.name = l.name;
    r.what = std::string(l.what) + " (" + format_bytes(l.ws) + ")";
    r.unit = "cycles";
    r.value = c.cycles;
    r.reason = "no data-sheet latency";
    char cfg[96];
    std::snprintf(cfg, sizeof cfg, "%.0f ns/hop, ld.global.%s", c.ns, l.ld == kern::ChaseLoad::ca ? "ca" : "cg");
    r.config = cfg;
    r.method = "one thread chases p = *p through a random cyclic permutation (Sattolo) of 128-byte lines of the working "
               "set, after a warm pass where the set fits a cache (for DRAM: no warm pass, L2 flushed before each launch); latency = clock64 cycles / hops (ns from %globaltimer), "
               "median of 3 launches. Not the Timer: a per-hop time, not a throughput.";
    r.extra = {{"ns_per_hop", c.ns}, {"working_set_bytes", double(l.ws)}, {"hops", double(l.hops)}};
    run.add(r);
  }
}

// ---- FP32 / FP64 ----
void measure_compute(Run& run) {
  const DeviceInfo& d = run.dev;
  const int threads = 256;
  const unsigned grid = static_cast<unsigned>(d.sm_count * std::max(1, d.max_threads_per_sm / threads));
  const double n_threads = double(grid) * threads;
  for (int which = 0; which < 2; ++which) {
    const bool f64 = which == 1;
    const double spec = f64 ? run.spec.fp64_tflops : run.spec.fp32_tflops;
    const double target_s = run.opt.quick ? 2e-3 : 5e-3;
    const double flops_wanted = (spec > 0 ? spec : 20.0) * 1e12 * target_s;
    const int iters = std::max(64, static_cast<int>(flops_wanted / (2.0 * kern::kFmaChains * n_threads)) / 8 * 8);
    run.progress(f64 ? "FP64 FMA" : "FP32 FMA");
    DeviceBuffer<double> out(static_cast<std::size_t>(n_threads));
    auto launch = [&](cudaStream_t s) {
      if (f64) kern::fma_f64(grid, threads, iters, out.get(), s);
      else kern::fma_f32(grid, threads, iters, reinterpret_cast<float*>(out.get()), s);
    };
    const double ms = run.median_ms(launch);  // burst
    const double flops = 2.0 * kern::kFmaChains * iters * n_threads;
    const Sustained sus = measure_sustained(run, launch, ms);
    Row r;
    r.group = "compute";
    r.name = f64 ? "fp64_fma" : "fp32_fma";
    r.what = f64 ? "FP64 FMA (CUDA cores)" : "FP32 FMA (CUDA cores)";
    r.unit = "TFLOP/s";
    r.spec = spec;
    r.spec_basis = compute_spec_basis("FMA lanes x 2 FLOPs per clock", run.dev, spec, "TFLOP/s");
    r.config = std::to_string(grid) + " blocks x " + std::to_string(threads) + " thr, " +
               std::to_string(kern::kFmaChains) + " independent chains x " + std::to_string(iters) + " steps";
    r.method = "x = fma(x, a, b) in " + std::to_string(kern::kFmaChains) +
               " independent chains per thread (no dependent-chain stall), a full grid; FLOPs = 2 x chains x steps x "
               "threads. " + std::string(kTimerMethod) + " The value is sustained: the kernel runs back to back until "
               "the NVML SM clock stops falling and the power settles, then is timed again; burst = the first timing.";
    r.extra = {{"flops", flops}};
    set_sustained(r, sus, flops, ms);
    run.add(r);
  }
}

// ---- host link ----
void measure_host(Run& run) {
  const std::uint64_t bytes = run.opt.quick ? 64 * MiB : 256 * MiB;
  const std::string size = format_bytes(bytes);
  DeviceBuffer<unsigned char> dbuf(bytes), dbuf2(bytes);
  PinnedBuffer<unsigned char> pin(bytes), pin2(bytes);
  std::vector<unsigned char> page(bytes, 1), page2(bytes, 2);
  std::memset(pin.get(), 3, bytes);
  const double spec = run.sys.pcie_gbps_per_direction ? *run.sys.pcie_gbps_per_direction : 0;
  const std::string basis = run.sys.pcie_gbps_per_direction
                                ? "PCIe max link Gen" + to_text(run.sys.pcie_gen_max) + " x" + to_text(run.sys.pcie_width_max) +
                                      " (NVML): transfer rate x lanes x encoding efficiency / 8, per direction."
                                : "";
  auto row = [&](const std::string& name, const std::string& what, double b, double ms, double sp, const std::string& method,
                 bool pageable) {
    Row r;
    r.group = "host";
    r.name = name;
    r.what = what;
    r.unit = "GB/s";
    r.value = gbps(b, ms);
    r.spec = sp;
    r.spec_basis = basis;
    if (sp <= 0) r.reason = "PCIe link unknown: " + run.sys.pcie_gbps_per_direction.why;
    r.config = size + (pageable ? ", pageable (malloc) host memory" : ", pinned (cudaHostAlloc) host memory");
    r.method = method;
    r.extra = {{"bytes", b}, {"median_ms", ms}};
    run.add(r);
  };
  const std::string tm = " Timer: events around the copy, median.";
  run.progress("host link, pinned");
  double ms = run.median_ms([&](cudaStream_t s) { AIPE_CUDA(cudaMemcpyAsync(dbuf.get(), pin.get(), bytes, cudaMemcpyHostToDevice, s)); });
  row("h2d_pinned", "host->device, pinned", double(bytes), ms, spec, "cudaMemcpyAsync H2D of " + size + "; bytes = one direction." + tm, false);
  ms = run.median_ms([&](cudaStream_t s) { AIPE_CUDA(cudaMemcpyAsync(pin.get(), dbuf.get(), bytes, cudaMemcpyDeviceToHost, s)); });
  row("d2h_pinned", "device->host, pinned", double(bytes), ms, spec, "cudaMemcpyAsync D2H of " + size + "; bytes = one direction." + tm, false);

  // Both directions at once: H2D on the Timer's stream, D2H on a second stream forked from it.
  Stream second;
  Event fork(cudaEventDisableTiming), join(cudaEventDisableTiming);
  ms = run.median_ms([&](cudaStream_t s) {
    AIPE_CUDA(cudaEventRecord(fork, s));
    AIPE_CUDA(cudaStreamWaitEvent(second, fork, 0));
    AIPE_CUDA(cudaMemcpyAsync(dbuf.get(), pin.get(), bytes, cudaMemcpyHostToDevice, s));
    AIPE_CUDA(cudaMemcpyAsync(pin2.get(), dbuf2.get(), bytes, cudaMemcpyDeviceToHost, second));
    AIPE_CUDA(cudaEventRecord(join, second));
    AIPE_CUDA(cudaStreamWaitEvent(s, join, 0));
  });
  row("bidir_pinned", "bidirectional, pinned (H2D + D2H sum)", 2.0 * bytes, ms, 2 * spec,
      "H2D and D2H of " + size + " each, on two streams at once; bytes = both directions summed (2 x " + size +
          "), over the time both take; spec = 2 x per direction." + tm,
      false);

  run.progress("host link, pageable");
  ms = run.median_ms([&](cudaStream_t s) { AIPE_CUDA(cudaMemcpyAsync(dbuf.get(), page.data(), bytes, cudaMemcpyHostToDevice, s)); },
                     Timing::standard, false);
  row("h2d_pageable", "host->device, pageable", double(bytes), ms, spec,
      "cudaMemcpyAsync H2D from malloc'd memory (the driver stages it through its own pinned buffer; the call "
      "returns when the copy is done, so no blocking kernel); bytes = one direction." + tm, true);
  ms = run.median_ms([&](cudaStream_t s) { AIPE_CUDA(cudaMemcpyAsync(page2.data(), dbuf.get(), bytes, cudaMemcpyDeviceToHost, s)); },
                     Timing::standard, false);
  row("d2h_pageable", "device->host, pageable", double(bytes), ms, spec,
      "cudaMemcpyAsync D2H into malloc'd memory (synchronous for pageable memory, no blocking kernel); bytes = one "
      "direction." + tm, true);
}

// ---- peer links ----
void measure_p2p(Run& run, int n) {
  if (n < 2) {
    const std::string why = "one GPU: peer bandwidth and latency need >= 2 GPUs";
    run.add(run.skipped("p2p", "p2p_unidirectional", "P2P copy, every ordered pair", "GB/s", why));
    run.add(run.skipped("p2p", "p2p_bidirectional", "P2P copy both ways, every pair", "GB/s", why));
    run.add(run.skipped("p2p", "p2p_latency", "P2P load latency, every pair", "ns", why));
    return;
  }
  auto can = [](int i, int j) {
    int c = 0;
    AIPE_CUDA(cudaDeviceCanAccessPeer(&c, i, j));
    return c != 0;
  };
  const std::uint64_t bytes = run.opt.quick ? 64 * MiB : 256 * MiB;
  std::vector<DeviceBuffer<unsigned char>> a, b;
  std::vector<DeviceInfo> devs;
  for (int i = 0; i < n; ++i) {
    AIPE_CUDA(cudaSetDevice(i));
    a.emplace_back(bytes);
    b.emplace_back(bytes);
    devs.push_back(query_device(i));
  }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (i != j && can(i, j)) {
        AIPE_CUDA(cudaSetDevice(i));
        const cudaError_t e = cudaDeviceEnablePeerAccess(j, 0);
        if (e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) AIPE_CUDA(e);
        cudaGetLastError();
      }
  auto spec_for = [&](int i) {
    const GpuSystemInfo g = query_gpu_system(devs[i]);
    if (g.nvlink && g.nvlink->links_active > 0) return nvlink_gbps_per_direction(g.nvlink->version, g.nvlink->links_active);
    return g.pcie_gbps_per_direction ? *g.pcie_gbps_per_direction : 0.0;
  };
  const std::string tm = " Timer on the source GPU: events, median.";
  for (const PeerPair& p : peer_pairs(n, can)) {
    run.progress("P2P " + p.label());
    AIPE_CUDA(cudaSetDevice(p.src));
    Stream s;
    Timer t(devs[p.src], s);
    const double ms = t.measure([&](cudaStream_t st) {
      AIPE_CUDA(cudaMemcpyPeerAsync(b[p.dst].get(), p.dst, a[p.src].get(), p.src, bytes, st));
    }, Timing::standard, true, run.crit).time_ms.median;
    Row r;
    r.group = "p2p";
    r.name = "p2p_uni_" + p.label();
    r.what = "P2P copy GPU " + p.label();
    r.unit = "GB/s";
    r.value = gbps(double(bytes), ms);
    r.spec = spec_for(p.src);
    r.spec_basis = "NVLink links x per-link rate (or the PCIe link), per direction.";
    r.config = std::string(p.peer_access ? "peer access" : "no peer access: the driver stages through the host") + ", " +
               format_bytes(bytes);
    r.method = "cudaMemcpyPeerAsync src -> dst on a stream of the source GPU; bytes = one direction." + tm;
    r.extra = {{"bytes", double(bytes)}, {"median_ms", ms}};
    run.add(r);

    if (p.peer_access) {  // latency: the source GPU chases pointers in the destination's memory
      const std::uint64_t ws = 64 * MiB;
      AIPE_CUDA(cudaSetDevice(p.dst));
      DeviceBuffer<unsigned char> remote(ws);
      AIPE_CUDA(cudaSetDevice(p.src));
      Stream ls;
      Run sub{run.opt, run.rep, devs[p.src], run.spec, run.sys, ls, t, run.crit};
      const ChaseResult c = chase_once(sub, remote.get(), ws, 0, 2000, kern::ChaseLoad::cg);
      Row l;
      l.group = "p2p";
      l.name = "p2p_latency_" + p.label();
      l.what = "P2P load latency GPU " + p.label();
      l.unit = "ns";
      l.value = c.ns;
      l.reason = "no data-sheet latency";
      l.config = std::to_string(int(c.cycles)) + " cycles/hop, " + format_bytes(ws) + " remote set";
      l.method = "one thread on the source GPU chases p = *p through a random cycle of 128-byte lines in the "
                 "destination GPU's memory (peer access); ns per hop from %globaltimer, median of 3.";
      l.extra = {{"cycles_per_hop", c.cycles}};
      run.add(l);
    }
  }
  for (const PeerPair& p : peer_pairs_bidirectional(n, can)) {
    run.progress("P2P " + std::to_string(p.src) + "<->" + std::to_string(p.dst));
    AIPE_CUDA(cudaSetDevice(p.dst));
    Stream back;
    Event join(cudaEventDisableTiming);
    AIPE_CUDA(cudaSetDevice(p.src));
    Stream s;
    Event fork(cudaEventDisableTiming);
    Timer t(devs[p.src], s);
    const double ms = t.measure([&](cudaStream_t st) {
      AIPE_CUDA(cudaEventRecord(fork, st));
      AIPE_CUDA(cudaStreamWaitEvent(back, fork, 0));
      AIPE_CUDA(cudaMemcpyPeerAsync(b[p.dst].get(), p.dst, a[p.src].get(), p.src, bytes, st));
      AIPE_CUDA(cudaMemcpyPeerAsync(b[p.src].get(), p.src, a[p.dst].get(), p.dst, bytes, back));
      AIPE_CUDA(cudaEventRecord(join, back));
      AIPE_CUDA(cudaStreamWaitEvent(st, join, 0));
    }, Timing::standard, true, run.crit).time_ms.median;
    Row r;
    r.group = "p2p";
    r.name = "p2p_bidir_" + std::to_string(p.src) + "<->" + std::to_string(p.dst);
    r.what = "P2P both ways GPU " + std::to_string(p.src) + "<->" + std::to_string(p.dst) + " (sum)";
    r.unit = "GB/s";
    r.value = bidirectional_gbps(double(bytes), double(bytes), ms);
    r.spec = 2 * spec_for(p.src);
    r.spec_basis = "2 x per-direction link rate.";
    r.config = std::string(p.peer_access ? "peer access" : "no peer access") + ", " + format_bytes(bytes) + " each way";
    r.method = "cudaMemcpyPeerAsync in both directions at once on two streams (one per GPU); bytes = both directions "
               "summed, over the time both take." + tm;
    r.extra = {{"bytes", 2.0 * bytes}, {"median_ms", ms}};
    run.add(r);
  }
  AIPE_CUDA(cudaSetDevice(run.opt.device));
}

// ---- bandwidth vs working set ----
void measure_sweep(Run& run) {
  const DeviceInfo& d = run.dev;
  const std::uint64_t max_ws = std::min<std::uint64_t>(run.opt.quick ? 256 * MiB : 1 * GiB, (free_bytes() / 4) & ~(MiB - 1));
  const auto sizes = sweep_sizes(d.l2_bytes, max_ws);
  const int threads = 512;
  const unsigned grid = static_cast<unsigned>(d.sm_count * std::max(1, d.max_threads_per_sm / threads));
  DeviceBuffer<unsigned char> buf(sizes.back());
  fill_uniform(reinterpret_cast<float*>(buf.get()), sizes.back() / 4, 11, 0.f, 1.f, run.stream);
  DeviceBuffer<float> partial(grid);
  const std::uint64_t chunk_bytes = 4ull * threads * 16;
  const std::uint64_t target = run.opt.quick ? 256 * MiB : 1 * GiB;
  for (std::uint64_t ws : sizes) {
    run.progress("sweep " + format_bytes(ws));
    const auto n_vec = static_cast<std::uint32_t>(ws / 16);
    const std::uint64_t per_block = std::max<std::uint64_t>(target, ws) / grid;
    const auto chunks = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, (per_block + chunk_bytes - 1) / chunk_bytes));
    const double bytes = double(grid) * chunks * chunk_bytes;
    const double ms = run.median_ms(
        [&](cudaStream_t s) { kern::sweep_read(buf.get(), n_vec, grid, threads, chunks, partial.get(), s); }, Timing::hot_l2);
    Row r;
    r.group = "sweep";
    r.name = "sweep_" + std::to_string(ws);
    r.what = format_bytes(ws);
    r.unit = "GB/s";
    r.value = gbps(bytes, ms);
    r.config = std::to_string(grid) + " blocks x " + std::to_string(threads) + " thr";
    r.method = "read bandwidth vs working set: every block reads a window of the set starting at block x set / grid and "
               "wrapping, so each line's reuse distance is the whole set (L1 hit while it fits one SM's L1, L2 hit while "
               "it fits the L2, DRAM beyond); at least " + format_bytes(target) +
               " loaded per launch; bytes = bytes loaded by the SMs. Timer without the L2 flush, events, median.";
    if (ws <= d.l2_bytes / 2) r.spec = 0;
    else if (ws >= 4 * d.l2_bytes) r.spec = run.spec.dram_gbps, r.spec_basis = "DRAM spec (set at least 4 x L2).";
    r.extra = {{"working_set_bytes", double(ws)}, {"bytes", bytes}, {"median_ms", ms}};
    run.add(r);
  }
}

bool wanted(const Options& o, const std::string& g) {
  return o.groups.empty() || std::find(o.groups.begin(), o.groups.end(), g) != o.groups.end();
}

}  // namespace

Report run_peak(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  Report rep;
  rep.aipe_version = version();
  rep.git_revision = git_revision();
  rep.timestamp = now_iso8601();
  rep.quick = o.quick;
  AIPE_CUDA(cudaGetDeviceCount(&rep.gpu_count));
  AIPE_CUDA(cudaSetDevice(o.device));
  rep.device = query_device(o.device);
  rep.spec = derive_spec_peaks(rep.device);

  Stream stream;
  Timer timer(rep.device, stream);
  StopCriteria crit;
  crit.min_samples = 10;
  crit.min_time_s = o.quick ? 0.02 : 0.05;
  crit.max_noise = 0.01;
  crit.budget_s = o.quick ? 0.12 : 0.3;
  Run run{o, rep, rep.device, rep.spec, query_gpu_system(rep.device), stream, timer, crit};

  if (wanted(o, "dram")) measure_dram(run);
  if (wanted(o, "cache")) measure_cache(run);
  if (wanted(o, "latency")) measure_latency(run);
  if (wanted(o, "compute")) measure_compute(run);
  if (wanted(o, "tensor")) measure_tensor(run);
  if (wanted(o, "host")) measure_host(run);
  if (wanted(o, "p2p")) measure_p2p(run, rep.gpu_count);
  if (wanted(o, "sweep")) measure_sweep(run);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace aipe::peak
