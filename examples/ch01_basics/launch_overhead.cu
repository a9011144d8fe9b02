// ch01/launch_overhead: what launching a kernel costs, and the floor under every aipe measurement.
//
// Ladder (the same one-thread kernel, timed two ways; no L2 flush in either, since a flush in front of
// the start event would itself keep the GPU busy while the launch is queued):
//   1 unblocked  CUDA events around the launch on an idle stream: the start event fires before the
//                launch reaches the GPU, so the host's launch latency is inside the measurement
//   2 blocked    the stream is held by a blocking kernel while the events and the launch are queued,
//                so only the GPU-side cost of the kernel remains: the smallest time aipe can report,
//                the harness's own floor under every measurement.
//
// The kernel writes one stamp value so that the run is verifiable (poisoned before, checked after).
// Napkin math: 4 bytes written, no FLOPs: nothing here is bound by the hardware's throughput.
#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

__global__ void stamp_kernel(unsigned* out, unsigned value) { *out = value; }

class LaunchOverhead final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch01/launch_overhead",
            "The cost of an empty kernel launch: the harness's floor",
            "A kernel that does nothing still costs a few microseconds: the host enqueues it, the GPU's front end "
            "fetches and schedules it. Timed with events on an idle stream, that latency lands in the "
            "measurement; queued behind a blocking kernel, only the GPU-side cost remains. Anything that runs "
            "for about this long is launch-bound, and wants fusion or a CUDA graph (chapter 12).",
            {},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {{.name = "unblocked",
             .summary = "events on an idle stream: the launch latency is timed too",
             .launch = [this](cudaStream_t s) { launch(s); },
             .blocking = false,
             .flush_l2 = false},
            {.name = "blocked",
             .summary = "queued behind a blocking kernel: only the GPU-side cost",
             .launch = [this](cudaStream_t s) { launch(s); },
             .flush_l2 = false}};
  }

  void setup(aipe::Context& ctx) override {
    out_ = aipe::DeviceBuffer<unsigned>(1);
    value_ = aipe::bits_at(ctx.seed(), 7) & 0x7FFFFFFFu;  // never the 0xFFFFFFFF poison
    ctx.output(out_.get(), out_.bytes());
  }

  aipe::Work work() const override { return {4.0, 0.0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    unsigned got = 0;
    AIPE_CUDA(cudaMemcpyAsync(&got, out_.get(), sizeof got, cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    return aipe::compare_scalar(got, value_, aipe::tolerance_for(aipe::DType::exact));
  }

 private:
  void launch(cudaStream_t s) {
    stamp_kernel<<<1, 1, 0, s>>>(out_.get(), value_);
    AIPE_CHECK_LAUNCH();
  }
  aipe::DeviceBuffer<unsigned> out_;
  unsigned value_ = 0;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(LaunchOverhead);
