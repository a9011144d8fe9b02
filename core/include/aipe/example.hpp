// What an example is: a problem (axes, inputs, reference, tolerance, work model) and an ordered
// ladder of variants that all solve that identical problem. One .cu file holds one example and
// registers it with AIPE_REGISTER_EXAMPLE.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aipe/device.hpp"
#include "aipe/verify.hpp"
#include "aipe/work.hpp"

namespace aipe {

enum class SizePreset { def, quick, small };

// A size the user can set with --size name=value. Three presets: `def` for `aipe run`, `quick` for
// --quick, and `small` for the GPU tests and sanitizer runs: small and deliberately awkward (not a
// multiple of any tile or block), so that edge handling is exercised. Build one with designated
// initializers: {.name = "n", .def = 64ll << 20, .quick = 16ll << 20, .small = 1000003, .help = "..."}.
//
// A choice axis (mask kind, dtype, layout) takes one of a named set instead: --size mask=causal. Build
// it with Axis::choice(); its presets are indices into `choices`, and setup() reads the value with
// Context::choice().
struct Axis {
  std::string name;
  std::int64_t def = 0;
  std::int64_t quick = 0;
  std::int64_t small = 0;
  std::string help;
  std::int64_t min = 1;
  std::int64_t max = INT64_MAX;
  std::vector<std::string> choices;  // non-empty: a choice axis

  // `quick` and `small` default to `def`. Throws std::logic_error for a preset that is not a choice.
  static Axis choice(std::string name, std::vector<std::string> choices, const std::string& def, std::string help,
                     const std::string& quick = "", const std::string& small = "");
  bool is_choice() const { return !choices.empty(); }
  std::int64_t preset(SizePreset p) const { return p == SizePreset::quick ? quick : p == SizePreset::small ? small : def; }
  // "none, causal": for listings and error messages.
  std::string choice_list() const;
};

// Designated initializers name what is required: {.min_cc = 90, .sm90a = true}, {.min_gpus = 2}.
struct Requirements {
  int min_cc = 0;              // e.g. 90 for Hopper features
  bool sm90a = false;          // needs the arch-specific sm_90a build (wgmma, setmaxnreg)
  int min_gpus = 1;
  std::uint64_t min_free_bytes = 0;  // device memory the default problem needs (0: derive from failure)
};

// How a variant is timed. `standard` is the only honest one; the others exist so chapter 1 can show,
// through the same harness, what measuring wrongly reports.
enum class Timing {
  standard,            // warm-up, L2 flushed before each sample, blocking kernel, CUDA events, median
  hot_l2,              // as standard but the L2 keeps what the previous sample left in it
  host_clock_no_sync,  // host clock around the launch call only: measures the enqueue, not the work
  first_launch,        // the very first launch, host clock with synchronize: lazy loading and cold caches
};
const char* to_string(Timing t);

// Fields in this order so both spellings work: positional {name, summary, launch} for the common
// rung, and designated initializers for anything more:
//   {.name = "pageable", .summary = "...", .launch = ..., .blocking = false, .metrics = ...}
struct Variant {
  std::string name;     // short, addressable: --variant NAME
  std::string summary;  // one line: what changed from the previous rung
  std::function<void(cudaStream_t)> launch;  // enqueues one complete run of the problem; idempotent
  Timing timing = Timing::standard;
  // false for launches that synchronize the host (cudaFree, cudaStreamSynchronize) or enqueue so many
  // operations that a blocked stream would fill the launch queue; then no blocking kernel is used.
  bool blocking = true;
  // false where a flush in front of the start event would distort what the rung shows (launch-latency
  // rungs: the flush keeps the GPU busy while the launch is queued). Reported as timing
  // "standard_no_flush".
  bool flush_l2 = true;
  // A component measured for comparison (e.g. the transfers alone, to give an overlapped pipeline its
  // ideal), not a solution of the whole problem: never the baseline, the best rung or in a ratio.
  bool component = false;
  double budget_s = 0;  // per-variant sampling budget (0: the run's default), for slow naive rungs
  Requirements requires_;  // extra requirements of this rung only
  // Returns a reason to skip this rung on this device/problem, or "" to run it.
  std::function<std::string()> skip_if;
  // Untimed: resets state that a launch consumes (a KV cache, a work queue) so that every launch sees
  // the same problem. Called before every launch of this rung (the verification run, the warm-up
  // launches, each sample, each profiled launch), after the outputs are poisoned and outside the timed
  // region: before the blocking kernel and the L2 flush, so it may synchronize, and what it leaves in
  // the L2 is flushed. Enqueue on the stream given.
  std::function<void(cudaStream_t)> prepare;
  // This rung's own numbers (achieved overlap, registers per thread, ...), reported beside the standard
  // ones. `median_ms` is its measured median.
  std::function<void(double median_ms, std::map<std::string, double>& out)> metrics;
};

class Context;

struct ExampleInfo {
  std::string id;       // "chNN/name"
  std::string title;
  std::string teaches;  // one paragraph
  std::vector<Axis> axes;
  Requirements requires_;
};

class Example {
 public:
  virtual ~Example() = default;
  // Both callable without a GPU: `aipe list` and the docs are built from them.
  virtual ExampleInfo info() const = 0;
  virtual std::vector<Variant> variants() = 0;

  // Allocates, generates inputs from ctx.seed(), computes the reference, registers outputs.
  virtual void setup(Context& ctx) = 0;
  // Bytes and FLOPs of one run at the sizes setup() saw.
  virtual Work work() const = 0;
  // Checks the outputs of the variant that just ran against the reference.
  virtual VerifyResult verify(Context& ctx) = 0;
};

// What setup() and verify() get from the runner.
class Context {
 public:
  Context(const DeviceInfo& dev, std::map<std::string, std::int64_t> sizes, std::uint64_t seed,
          cudaStream_t stream, std::map<std::string, std::string> choices = {})
      : dev_(dev), sizes_(std::move(sizes)), choices_(std::move(choices)), seed_(seed), stream_(stream) {}

  std::int64_t size(const std::string& axis) const;
  const std::map<std::string, std::int64_t>& sizes() const { return sizes_; }
  // The value of a choice axis ("causal").
  const std::string& choice(const std::string& axis) const;
  const std::map<std::string, std::string>& choices() const { return choices_; }
  std::uint64_t seed() const { return seed_; }
  cudaStream_t stream() const { return stream_; }
  const DeviceInfo& device() const { return dev_; }
  const std::string& variant() const { return variant_; }  // the variant being verified

  // Registers an output to poison (fill with `byte`) before every verification run, so an element
  // a variant fails to write is caught: 0xFF gives NaN for every float type.
  void output(void* ptr, std::size_t bytes, unsigned char byte = 0xFF);
  void poison_outputs() const;

  void set_variant(std::string v) { variant_ = std::move(v); }

 private:
  struct Out {
    void* ptr;
    std::size_t bytes;
    unsigned char byte;
  };
  const DeviceInfo& dev_;
  std::map<std::string, std::int64_t> sizes_;
  std::map<std::string, std::string> choices_;
  std::uint64_t seed_;
  cudaStream_t stream_;
  std::string variant_;
  std::vector<Out> outputs_;
};

// Names that mark a vendor-library rung: the ceiling a ladder is compared with.
bool is_library_variant(const std::string& name);

}  // namespace aipe
