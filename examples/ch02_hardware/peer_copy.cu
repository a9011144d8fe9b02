// ch02/peer_copy: moving n floats from one GPU to another, through the host or directly.
//
// Ladder (every rung moves the same n x 4 bytes from GPU A to GPU B; verified bit-exact first):
//   1 staged_through_host  D2H into pinned host memory on A's stream, then H2D into B on B's stream,
//                          in 8 chunks so the two PCIe directions overlap (what code without peer
//                          access must do)
//   2 peer                 cudaMemcpyPeerAsync with peer access enabled: one DMA over NVLink (or PCIe
//                          peer-to-peer), host memory never touched
//
// Napkin math: bytes = 4n, one direction (A -> B) counted once. Staged: bounded by PCIe per
// direction (~55 GB/s measured on Gen5 x16) and the host's memory; peer over NVLink 4 (18 links):
// up to 450 GB/s per direction. Needs two GPUs: skipped with the reason on one.
// A = the run's --device, B = the next GPU. Reference: the source data; tolerance: exact.
#include <cuda_runtime.h>

#include <optional>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kChunks = 8;

class PeerCopy final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch02/peer_copy",
            "GPU to GPU: staged through the host vs peer copy",
            "Without peer access a GPU-to-GPU copy crosses PCIe twice and host memory once; with it, one DMA moves "
            "the data over NVLink (or PCIe peer-to-peer) and the host is not involved. The gap is the NVLink-to-PCIe "
            "bandwidth ratio, which is why multi-GPU libraries (NCCL) insist on peer paths.",
            {{.name = "n",
              .def = 64ll << 20,
              .quick = 16ll << 20,
              .small = 1000003,
              .help = "floats moved from GPU A to GPU B (4 bytes each)"}},
            {.min_gpus = 2}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {"staged_through_host", "D2H into pinned host memory, then H2D into the other GPU, 8 overlapped chunks",
         [this](cudaStream_t s) { staged(s); }},
        {.name = "peer",
         .summary = "cudaMemcpyPeerAsync with peer access: one DMA over NVLink or PCIe P2P",
         .launch = [this](cudaStream_t s) { AIPE_CUDA(cudaMemcpyPeerAsync(dst_.get(), b_, src_.get(), a_, bytes(), s)); },
         .skip_if =
             [this] {
               return peer_ok_ ? std::string()
                               : "GPU " + std::to_string(a_) + " cannot access GPU " + std::to_string(b_) + " as a peer";
             }},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    int count = 0;
    AIPE_CUDA(cudaGetDeviceCount(&count));
    if (count < 2) throw aipe::BadInput("ch02/peer_copy needs two GPUs");
    a_ = ctx.device().ordinal;
    b_ = (a_ + 1) % count;
    int can = 0;
    AIPE_CUDA(cudaDeviceCanAccessPeer(&can, a_, b_));
    peer_ok_ = can != 0;
    if (peer_ok_) enable_peer(a_, b_);
    int back = 0;
    AIPE_CUDA(cudaDeviceCanAccessPeer(&back, b_, a_));
    if (back) enable_peer(b_, a_);

    AIPE_CUDA(cudaSetDevice(a_));  // src on A, dst on B: a peer copy must cross the link
    src_ = aipe::DeviceBuffer<float>(n_);
    aipe::fill_uniform(src_.get(), n_, aipe::sub_seed(ctx.seed(), 1), -1.f, 1.f, ctx.stream());
    staging_ = aipe::PinnedBuffer<float>(n_);
    AIPE_CUDA(cudaSetDevice(b_));
    dst_ = aipe::DeviceBuffer<float>(n_);
    stream_b_.emplace();
    done_b_.emplace(cudaEventDisableTiming);
    AIPE_CUDA(cudaSetDevice(a_));
    done_a_.clear();
    for (int c = 0; c < kChunks; ++c) done_a_.emplace_back(cudaEventDisableTiming);
    start_a_.emplace(cudaEventDisableTiming);
    ref_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) ref_[i] = aipe::uniform_at(aipe::sub_seed(ctx.seed(), 1), i, -1.f, 1.f);
    ctx.output(dst_.get(), dst_.bytes());  // poisoned through peer access from A's stream
  }

  aipe::Work work() const override { return {4.0 * n_, 0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out(n_);
    AIPE_CUDA(cudaMemcpyAsync(out.data(), dst_.get(), bytes(), cudaMemcpyDefault, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::exact));
  }

 private:
  // Enables `from`'s access to `to`'s memory and restores the current device (so the caller's
  // allocations land on the GPU it expects).
  static void enable_peer(int from, int to) {
    int current = 0;
    AIPE_CUDA(cudaGetDevice(&current));
    AIPE_CUDA(cudaSetDevice(from));
    const cudaError_t e = cudaDeviceEnablePeerAccess(to, 0);
    if (e == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
    else AIPE_CUDA(e);
    AIPE_CUDA(cudaSetDevice(current));
  }

  // Chunk c: D2H on A's stream, then (after that chunk's event) H2D on B's stream; A's stream finally
  // waits for B's last chunk, so the launch ends on the stream it was given.
  void staged(cudaStream_t s) {
    const std::size_t per = (n_ + kChunks - 1) / kChunks;
    cudaStream_t sb = *stream_b_;
    AIPE_CUDA(cudaEventRecord(*start_a_, s));
    AIPE_CUDA(cudaStreamWaitEvent(sb, *start_a_, 0));
    for (int c = 0; c < kChunks; ++c) {
      const std::size_t lo = std::min(n_, std::size_t(c) * per), len = std::min(n_, lo + per) - lo;
      if (len == 0) break;
      AIPE_CUDA(cudaMemcpyAsync(staging_.get() + lo, src_.get() + lo, len * 4, cudaMemcpyDeviceToHost, s));
      AIPE_CUDA(cudaEventRecord(done_a_[c], s));
      AIPE_CUDA(cudaStreamWaitEvent(sb, done_a_[c], 0));
      AIPE_CUDA(cudaMemcpyAsync(dst_.get() + lo, staging_.get() + lo, len * 4, cudaMemcpyHostToDevice, sb));
    }
    AIPE_CUDA(cudaEventRecord(*done_b_, sb));
    AIPE_CUDA(cudaStreamWaitEvent(s, *done_b_, 0));
  }

  std::size_t bytes() const { return n_ * sizeof(float); }
  std::size_t n_ = 0;
  int a_ = 0, b_ = 1;
  bool peer_ok_ = false;
  aipe::DeviceBuffer<float> src_, dst_;
  aipe::PinnedBuffer<float> staging_;
  // Created in setup (examples are constructed without a GPU); stream_b_ and done_b_ live on GPU B.
  std::optional<aipe::Stream> stream_b_;
  std::optional<aipe::Event> start_a_, done_b_;
  std::vector<aipe::Event> done_a_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(PeerCopy);
