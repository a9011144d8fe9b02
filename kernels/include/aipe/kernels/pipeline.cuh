// The producer/consumer stage ring of every warp-specialized kernel: `Stages` shared-memory slots, each
// guarded by a "full" mbarrier (the producer's TMA bytes complete it) and an "empty" one (the consumers'
// arrivals complete it), and the state object that walks the ring.
//
// Phases: a fresh mbarrier is in phase 0. A consumer waits for the full barrier's phase `phase` to complete;
// a producer waits on the empty barrier with parity phase ^ 1, which a fresh barrier passes at once: the
// ring starts with every slot free. Every trip round the ring flips the phase, in PipelineState::advance.
//
// Cluster multicast: a slot that TMA fills in every CTA of a cluster is free only when the consumers of all
// of them released it, so the empty barrier counts consumer arrivals of every CTA (init) and a consumer
// arrives on the empty barrier of every CTA of the cluster (release<CM>).
#pragma once
#include <cstdint>

#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels {

// Where a walker of the ring is: the slot and the parity of the slot's current phase.
template <int Stages>
struct PipelineState {
  int index = 0;
  std::uint32_t phase = 0;
  __device__ __forceinline__ void advance() {
    if (++index == Stages) {
      index = 0;
      phase ^= 1;
    }
  }
  // n steps at once: a consumer that skips the slots another consumer takes (the ping-pong GEMM's warpgroups
  // each skip the other's tile).
  __device__ __forceinline__ void advance(int n) {
    const int to = index + n;
    index = to % Stages;
    phase ^= static_cast<std::uint32_t>((to / Stages) & 1);
  }
};

template <int Stages>
struct Pipeline {
  static constexpr int kStages = Stages;
  using State = PipelineState<Stages>;
  std::uint64_t* full;   // [Stages]
  std::uint64_t* empty;  // [Stages]

  // `bars` points at 2 * Stages mbarriers (16-byte aligned shared memory): full first, then empty.
  __device__ __forceinline__ explicit Pipeline(std::uint64_t* bars) : full(bars), empty(bars + Stages) {}

  // One thread, before anyone uses the ring: `producers` arrivals complete a full barrier's phase (with TMA,
  // the one arrive.expect_tx, the bytes doing the rest); `consumers` arrivals complete an empty one. Follow
  // with fence_barrier_init() and a CTA (or cluster) barrier.
  __device__ __forceinline__ void init(std::uint32_t producers, std::uint32_t consumers) const {
    for (int s = 0; s < Stages; ++s) {
      mbar_init(&full[s], producers);
      mbar_init(&empty[s], consumers);
    }
  }

  // Producer: waits until slot st.index is free (in every CTA that will receive it), then announces the
  // bytes TMA will deliver into it; the TMA loads then complete on full_bar(st).
  __device__ __forceinline__ void producer_acquire(const State& st) const { mbar_wait(&empty[st.index], st.phase ^ 1); }
  __device__ __forceinline__ void producer_expect_tx(const State& st, std::uint32_t bytes) const {
    mbar_arrive_expect_tx(&full[st.index], bytes);
  }
  __device__ __forceinline__ std::uint64_t* full_bar(const State& st) const { return &full[st.index]; }

  // Consumer: waits until slot st.index holds its data.
  __device__ __forceinline__ void consumer_wait(const State& st) const { mbar_wait(&full[st.index], st.phase); }
  // Consumer: gives slot `index` back to the producer of every CTA of a cluster of CM that received data into
  // it (CM = 1: this CTA's only).
  template <int CM = 1>
  __device__ __forceinline__ void consumer_release(int index) const {
    if constexpr (CM == 1) {
      mbar_arrive(&empty[index]);
    } else {
#pragma unroll
      for (int r = 0; r < CM; ++r) mbar_arrive_cluster(&empty[index], static_cast<std::uint32_t>(r));
    }
  }
};

}  // namespace aipe::kernels
