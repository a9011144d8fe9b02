// ch11/producer_consumer: a two-stream pipeline with a ring of buffers and events in both directions.
//
// Problem: n elements in `chunks` ragged chunks. For each chunk k a producer kernel P writes a staging slot,
// slot[i] = p(x[k][i]) (v <- fmaf(v, 0.75, x/8) iterated `iters` times), and a consumer kernel Q reads
// it and writes the output, y[k][i] = q(slot[i]) (v <- fmaf(v, -0.5, 1 + slot/4) iterated `iters` times).
// A chunk is small (a partial wave of blocks, like a small-batch stage), so one kernel leaves most SMs idle:
// at the defaults 4096 elements = 32 blocks of 4 warps, each step waiting out the FMA latency, ~8 us per
// kernel (4096 x 4 cycles at 1.98 GHz), longer than the host needs to enqueue a chunk's work.
//
// Ladder (same kernels, same chunks):
//   1 serial      one stream, one slot: P(0) Q(0) P(1) Q(1) ...
//   2 one_slot    producer and consumer on their own streams, but a single slot: P(k+1) must wait until
//                 Q(k) has released it, so the two streams still take turns (events add nothing).
//   3 ring        a ring of `slots` staging buffers: P(k) waits on "slot free" (recorded after Q(k - slots)),
//                 records "slot filled"; Q(k) waits on "filled". The producer runs up to `slots` chunks
//                 ahead and P(k+1) runs beside Q(k) on the SMs the other leaves idle.
// Multi-stream rungs fork from the timed stream and join back with events. Metric: `us_per_chunk`.
//
// Reference: the same float operations on the CPU (std::fma for fmaf, exact scalings; aipe::iterate_exact stops
// once the float sequence is periodic): exact match.
// The staging slots are poisoned before each verification too, so a consumer that runs ahead of its
// producer reads NaN. Napkin math: DRAM minimum 8n bytes (x read once, y written once); flops 4 * iters * n.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify.hpp"

namespace {

constexpr int kThreads = 128;

// Producer: v <- 0.75 v + x/8 (fixed point x/2); consumer: v <- -0.5 v + (1 + s/4) (fixed point (1 + s/4)/1.5).
__host__ __device__ inline float produce_step(float v, float c) {
#if defined(__CUDA_ARCH__)
  return fmaf(v, 0.75f, c);
#else
  return std::fma(v, 0.75f, c);
#endif
}
__host__ __device__ inline float consume_step(float v, float c) {
#if defined(__CUDA_ARCH__)
  return fmaf(v, -0.5f, c);
#else
  return std::fma(v, -0.5f, c);
#endif
}

__global__ void producer_kernel(const float* __restrict__ x, float* __restrict__ slot, int len, int iters) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= len) return;
  const float xi = x[i];
  const float c = __fmul_rn(xi, 0.125f);
  float v = xi;
  for (int k = 0; k < iters; ++k) v = produce_step(v, c);
  slot[i] = v;
}

__global__ void consumer_kernel(const float* __restrict__ slot, float* __restrict__ y, int len, int iters) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= len) return;
  const float s = slot[i];
  const float c = __fadd_rn(1.0f, __fmul_rn(s, 0.25f));
  float v = s;
  for (int k = 0; k < iters; ++k) v = consume_step(v, c);
  y[i] = v;
}

class ProducerConsumer final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch11/producer_consumer",
            "A producer/consumer pipeline across two streams with a ring of buffers",
            "When one stage produces data that the next consumes, two streams let the producer work on chunk "
            "k+1 while the consumer works on chunk k, as long as neither overwrites what the other still "
            "reads. Events carry both directions of that contract: 'slot filled' from producer to consumer and "
            "'slot free' back. With one staging slot the streams still take turns; a ring of a few slots lets "
            "the producer run ahead and the two stages share the GPU.",
            {{.name = "n",
              .def = 1 << 18,
              .quick = 1 << 18,
              .small = 30011,
              .help = "elements through the pipeline",
              .max = 1 << 28},
             {.name = "chunks",
              .def = 64,
              .quick = 64,
              .small = 7,
              .help = "chunks (ragged: n need not divide)",
              .max = 1 << 16},
             {.name = "iters",
              .def = 4096,
              .quick = 4096,
              .small = 29,
              .help = "dependent steps per element in each stage",
              .max = 1 << 20},
             {.name = "slots", .def = 3, .quick = 3, .small = 2, .help = "staging buffers in the ring", .max = 16}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto per_chunk = [this](double median_ms, std::map<std::string, double>& out) {
      out["us_per_chunk"] = 1e3 * median_ms / chunks_;
    };
    return {
        {.name = "serial",
         .summary = "one stream, one staging slot: P and Q take turns",
         .launch = [this](cudaStream_t s) { serial(s); },
         .metrics = per_chunk},
        {.name = "one_slot",
         .summary = "producer and consumer streams sharing one slot: still taking turns",
         .launch = [this](cudaStream_t s) { ring(s, 1); },
         .metrics = per_chunk},
        {.name = "ring",
         .summary = "a ring of `slots` buffers, events both ways: P(k+1) runs beside Q(k)",
         .launch = [this](cudaStream_t s) { ring(s, slots_); },
         .metrics = per_chunk},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<int>(ctx.size("n"));
    chunks_ = static_cast<int>(ctx.size("chunks"));
    iters_ = static_cast<int>(ctx.size("iters"));
    slots_ = static_cast<int>(ctx.size("slots"));
    if (chunks_ > n_) throw aipe::BadInput("chunks must not exceed n");
    cap_ = (n_ + chunks_ - 1) / chunks_;
    const std::uint64_t sx = aipe::sub_seed(ctx.seed(), 1);
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    slot_ = aipe::DeviceBuffer<float>(static_cast<std::size_t>(cap_) * slots_);
    aipe::fill_uniform(x_.get(), n_, sx, -1.f, 1.f, ctx.stream());
    streams_.clear();
    streams_.emplace_back();  // producer
    streams_.emplace_back();  // consumer
    ev_fork_.clear();
    ev_fork_.emplace_back(cudaEventDisableTiming);
    filled_.clear();
    freed_.clear();
    for (int i = 0; i < slots_; ++i) {
      filled_.emplace_back(cudaEventDisableTiming);
      freed_.emplace_back(cudaEventDisableTiming);
    }
    ref_.resize(n_);
    for (int i = 0; i < n_; ++i) {
      const float x = aipe::uniform_at(sx, i, -1.f, 1.f);
      const float cp = x * 0.125f;  // exact
      const float v = aipe::iterate_exact(x, iters_, [cp](float u) { return produce_step(u, cp); });
      const float c = 1.0f + v * 0.25f;  // v/4 is exact; one rounding in the add, as on the device
      ref_[i] = aipe::iterate_exact(v, iters_, [c](float u) { return consume_step(u, c); });
    }
    ctx.output(y_.get(), y_.bytes());
    ctx.output(slot_.get(), slot_.bytes());
  }

  aipe::Work work() const override { return {8.0 * n_, 4.0 * iters_ * static_cast<double>(n_), aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::f32));
  }

 private:
  int lo(int k) const { return static_cast<int>(static_cast<long long>(n_) * k / chunks_); }
  static unsigned blocks(int len) { return static_cast<unsigned>((len + kThreads - 1) / kThreads); }

  void produce(cudaStream_t s, int k, int slot) {
    const int len = lo(k + 1) - lo(k);
    producer_kernel<<<blocks(len), kThreads, 0, s>>>(x_.get() + lo(k), slot_.get() + std::size_t(slot) * cap_, len, iters_);
    AIPE_CHECK_LAUNCH();
  }
  void consume(cudaStream_t s, int k, int slot) {
    const int len = lo(k + 1) - lo(k);
    consumer_kernel<<<blocks(len), kThreads, 0, s>>>(slot_.get() + std::size_t(slot) * cap_, y_.get() + lo(k), len, iters_);
    AIPE_CHECK_LAUNCH();
  }

  void serial(cudaStream_t s) {
    for (int k = 0; k < chunks_; ++k) {
      produce(s, k, 0);
      consume(s, k, 0);
    }
  }

  void ring(cudaStream_t s, int slots) {
    cudaStream_t prod = streams_[0], cons = streams_[1];
    AIPE_CUDA(cudaEventRecord(ev_fork_[0], s));
    AIPE_CUDA(cudaStreamWaitEvent(prod, ev_fork_[0], 0));
    AIPE_CUDA(cudaStreamWaitEvent(cons, ev_fork_[0], 0));
    for (int k = 0; k < chunks_; ++k) {
      const int slot = k % slots;
      // The slot's previous reader, Q(k - slots), was queued earlier in this loop, so this wait sees it.
      if (k >= slots) AIPE_CUDA(cudaStreamWaitEvent(prod, freed_[slot], 0));
      produce(prod, k, slot);
      AIPE_CUDA(cudaEventRecord(filled_[slot], prod));
      AIPE_CUDA(cudaStreamWaitEvent(cons, filled_[slot], 0));
      consume(cons, k, slot);
      AIPE_CUDA(cudaEventRecord(freed_[slot], cons));
    }
    // Join: the consumer's last event is after every Q; the producer's last P is before it.
    AIPE_CUDA(cudaStreamWaitEvent(s, freed_[(chunks_ - 1) % slots], 0));
  }

  int n_ = 0, chunks_ = 1, iters_ = 0, slots_ = 1, cap_ = 0;
  aipe::DeviceBuffer<float> x_, y_, slot_;
  std::vector<aipe::Stream> streams_;  // created in setup
  std::vector<aipe::Event> ev_fork_, filled_, freed_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(ProducerConsumer);
