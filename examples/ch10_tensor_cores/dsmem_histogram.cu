// ch10/dsmem_histogram: a histogram whose bins are too many for one CTA to privatize cheaply, shared
// across a thread-block cluster through distributed shared memory (DSMEM), vs global atomics, vs one
// private copy per CTA, vs a cooperative persistent kernel that merges the copies after a grid sync.
//
// Ladder:
//   1 global_atomics  every element is an atomicAdd on the global histogram (L2 atomics)
//   2 smem_private    one full private histogram per CTA in shared memory (bins x 4 B: 128 KiB at the
//                     default, so one CTA per SM), merged into global by one atomicAdd per non-zero bin
//   3 cluster_dsmem   the bins are split over the CTAs of a cluster (cudaLaunchKernelEx with a cluster
//                     dimension): each CTA holds bins / cluster, and every element is added into the owning
//                     CTA's shared memory through cooperative_groups::this_cluster().map_shared_rank. Each
//                     CTA holds a quarter of the bytes, so several CTAs share an SM; one merge per cluster
//   4 cooperative     persistent cooperative kernel (cudaLaunchCooperativeKernel): private shared-memory
//                     histograms written to a per-CTA slab, grid.sync(), then every bin summed over the slabs
//                     in a fixed order: no global atomics and a deterministic merge
//
// Problem: n bin indices uniform in [0, bins) (uint32); count how many fall in each bin.
// Reference: the same counts on the CPU from the regenerated indices: exact.
// Work: bytes = 4 n (indices read) + 4 bins (counts written): a bandwidth-bound problem whose floor is the
// read of the input (~90 us for 256 MB at ~3 TB/s); the ladder is about where the atomics land.
#include <cooperative_groups.h>

#include <algorithm>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace cg = cooperative_groups;

namespace {

__global__ void fill_bins(unsigned* in, std::size_t n, std::uint64_t seed, unsigned bins) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    in[i] = aipe::bits_at(seed, i) % bins;
}

__global__ void hist_global(const unsigned* __restrict__ in, std::size_t n, unsigned* hist) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    atomicAdd(hist + __ldg(in + i), 1u);
}

// Counts this CTA's share of the input into a private shared-memory histogram.
__device__ void count_private(const unsigned* __restrict__ in, std::size_t n, unsigned* sh, int bins) {
  for (int b = threadIdx.x; b < bins; b += blockDim.x) sh[b] = 0;
  __syncthreads();
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    atomicAdd(sh + __ldg(in + i), 1u);
  __syncthreads();
}

__global__ void hist_smem(const unsigned* __restrict__ in, std::size_t n, unsigned* hist, int bins) {
  extern __shared__ unsigned sh[];
  count_private(in, n, sh, bins);
  for (int b = threadIdx.x; b < bins; b += blockDim.x)
    if (sh[b]) atomicAdd(hist + b, sh[b]);
}

__global__ void hist_cluster(const unsigned* __restrict__ in, std::size_t n, unsigned* hist, int bins) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ unsigned sh[];
  cg::cluster_group cluster = cg::this_cluster();
  const int ranks = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  const int per = (bins + ranks - 1) / ranks;  // bins owned by each CTA of the cluster
  const int mine = min(per, bins - rank * per);
  for (int b = threadIdx.x; b < per; b += blockDim.x) sh[b] = 0;
  cluster.sync();  // every CTA's share is zeroed before anyone adds into it
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const unsigned v = __ldg(in + i);
    const unsigned owner = v / unsigned(per);
    unsigned* dst = cluster.map_shared_rank(sh, owner);  // a peer CTA's shared memory, over the SM-to-SM network
    atomicAdd(dst + (v - owner * per), 1u);
  }
  cluster.sync();  // all remote adds have landed (and no CTA leaves while a peer still writes to it)
  for (int b = threadIdx.x; b < mine; b += blockDim.x)
    if (sh[b]) atomicAdd(hist + rank * per + b, sh[b]);
#endif
}

__global__ void hist_cooperative(const unsigned* __restrict__ in, std::size_t n, unsigned* slabs, unsigned* hist, int bins) {
  extern __shared__ unsigned sh[];
  count_private(in, n, sh, bins);
  unsigned* mine = slabs + std::size_t(blockIdx.x) * bins;
  for (int b = threadIdx.x; b < bins; b += blockDim.x) mine[b] = sh[b];
  cg::this_grid().sync();  // every slab is written (grid.sync orders the global writes)
  for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < bins; b += gridDim.x * blockDim.x) {
    unsigned s = 0;
    for (unsigned j = 0; j < gridDim.x; ++j) s += slabs[std::size_t(j) * bins + b];
    hist[b] = s;
  }
}

class DsmemHistogram final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch10/dsmem_histogram",
            "Histogram across a thread-block cluster through distributed shared memory vs global and private atomics",
            "Shared-memory atomics are fast but one CTA's shared memory is small: a 32K-bin histogram (128 KiB) "
            "privatized per CTA leaves room for one CTA per SM. Hopper's thread-block clusters let CTAs on "
            "neighbouring SMs address each other's shared memory (DSMEM): split the bins over a cluster and every "
            "CTA needs a fraction of the memory, while each update still lands in SRAM, not in L2. A cooperative "
            "persistent kernel shows the other Hopper-era tool: one grid-wide barrier instead of global atomics.",
            {{.name = "n", .def = 64 << 20, .quick = 16 << 20, .small = 100003, .help = "number of input indices"},
             {.name = "bins", .def = 32768, .quick = 32768, .small = 3001, .help = "number of bins"},
             {.name = "cluster",
              .def = 4,
              .quick = 4,
              .small = 4,
              .help = "CTAs per cluster for cluster_dsmem (a portable cluster has at most 8)",
              .min = 1,
              .max = 8}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {{.name = "global_atomics",
             .summary = "one global atomicAdd per element",
             .launch = [this](cudaStream_t s) { run_global(s); }},
            {.name = "smem_private",
             .summary = "a full private histogram per CTA in shared memory, merged by atomics",
             .launch = [this](cudaStream_t s) { run_smem(s); },
             .skip_if = [this] { return fits_reason(); },
             .metrics = [this](double, std::map<std::string, double>& out) { private_metrics(grid_smem_, out); }},
            {.name = "cluster_dsmem",
             .summary = "bins split over a cluster's CTAs, updates through map_shared_rank (DSMEM)",
             .launch = [this](cudaStream_t s) { run_cluster(s); },
             .requires_ = {.min_cc = 90},
             .metrics =
                 [this](double, std::map<std::string, double>& out) {
                   out["cluster_ctas"] = grid_cluster_;
                   out["smem_per_cta_kib"] = smem_cluster_ / 1024.0;
                 }},
            {.name = "cooperative",
             .summary = "persistent cooperative kernel: private histograms, grid.sync, atomic-free merge",
             .launch = [this](cudaStream_t s) { run_coop(s); },
             .skip_if = [this] { return fits_reason(); },
             .metrics = [this](double, std::map<std::string, double>& out) { private_metrics(grid_coop_, out); }}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = std::size_t(ctx.size("n"));
    bins_ = int(ctx.size("bins"));
    cluster_ = int(ctx.size("cluster"));
    in_ = aipe::DeviceBuffer<unsigned>(n_);
    hist_ = aipe::DeviceBuffer<unsigned>(bins_);
    const auto seed = aipe::sub_seed(ctx.seed(), 1);
    fill_bins<<<1024, 256, 0, ctx.stream()>>>(in_.get(), n_, seed, unsigned(bins_));
    AIPE_CHECK_LAUNCH();
    ctx.output(hist_.get(), hist_.bytes());
    const auto& dev = ctx.device();
    sms_ = dev.sm_count;
    smem_full_ = std::size_t(bins_) * 4;
    optin_ = dev.smem_per_block_optin_bytes;
    if (smem_full_ <= optin_) {
      AIPE_CUDA(cudaFuncSetAttribute(hist_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_full_)));
      AIPE_CUDA(cudaFuncSetAttribute(hist_cooperative, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_full_)));
      int occ = 0;
      AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, hist_smem, kThreads, smem_full_));
      grid_smem_ = std::max(1, occ) * sms_;
      AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, hist_cooperative, kThreads, smem_full_));
      grid_coop_ = std::max(1, occ) * sms_;  // all co-resident: required by grid.sync
      slabs_ = aipe::DeviceBuffer<unsigned>(std::size_t(grid_coop_) * bins_);
    }
    if (dev.cc() >= 90) {
      const int per = (bins_ + cluster_ - 1) / cluster_;
      smem_cluster_ = std::size_t(per) * 4;
      if (smem_cluster_ > optin_) throw aipe::BadInput("bins / cluster must fit one CTA's shared memory");
      AIPE_CUDA(cudaFuncSetAttribute(hist_cluster, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_cluster_)));
      const int clusters = aipe::kernels::cluster_occupancy(hist_cluster, kThreads, smem_cluster_, cluster_);
      grid_cluster_ = std::max(1, clusters) * cluster_;
    }
    ref_.assign(bins_, 0);
    for (std::size_t i = 0; i < n_; ++i) ++ref_[aipe::bits_at(seed, i) % unsigned(bins_)];
  }

  aipe::Work work() const override { return {4.0 * n_ + 4.0 * bins_, 0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<unsigned> out = aipe::to_host(hist_, ctx.stream());
    return aipe::compare(std::span<const unsigned>(out), std::span<const unsigned>(ref_),
                         aipe::tolerance_for(aipe::DType::exact));
  }

 private:
  static constexpr int kThreads = 512;

  // The rungs that keep a whole private histogram per CTA: their grid and shared memory per CTA.
  void private_metrics(int ctas, std::map<std::string, double>& out) const {
    out["ctas"] = ctas;
    out["smem_per_cta_kib"] = smem_full_ / 1024.0;
  }

  std::string fits_reason() const {
    if (smem_full_ > optin_)
      return std::to_string(bins_) + " bins need " + std::to_string(smem_full_) + " B of shared memory per CTA; the device allows " +
             std::to_string(optin_);
    return "";
  }

  void zero(cudaStream_t s) { AIPE_CUDA(cudaMemsetAsync(hist_.get(), 0, hist_.bytes(), s)); }

  void run_global(cudaStream_t s) {
    zero(s);
    hist_global<<<sms_ * 8, 256, 0, s>>>(in_.get(), n_, hist_.get());
    AIPE_CHECK_LAUNCH();
  }
  void run_smem(cudaStream_t s) {
    zero(s);
    hist_smem<<<grid_smem_, kThreads, smem_full_, s>>>(in_.get(), n_, hist_.get(), bins_);
    AIPE_CHECK_LAUNCH();
  }
  void run_cluster(cudaStream_t s) {
    zero(s);
    aipe::kernels::launch_in_clusters(hist_cluster, std::max(grid_cluster_, cluster_), kThreads, smem_cluster_, cluster_, s,
                                     static_cast<const unsigned*>(in_.get()), n_, hist_.get(), bins_);
  }
  void run_coop(cudaStream_t s) {
    const unsigned* in = in_.get();
    std::size_t n = n_;
    unsigned* slabs = slabs_.get();
    unsigned* hist = hist_.get();
    int bins = bins_;
    void* args[] = {&in, &n, &slabs, &hist, &bins};
    AIPE_CUDA(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(hist_cooperative), dim3(grid_coop_), dim3(kThreads), args,
                                          smem_full_, s));
  }

  std::size_t n_ = 0, smem_full_ = 0, smem_cluster_ = 0, optin_ = 0;
  int bins_ = 0, cluster_ = 0, sms_ = 0, grid_smem_ = 0, grid_coop_ = 0, grid_cluster_ = 0;
  aipe::DeviceBuffer<unsigned> in_, hist_, slabs_;
  std::vector<unsigned> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(DsmemHistogram);
