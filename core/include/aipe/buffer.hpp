// RAII owners for CUDA resources: device and pinned host buffers, streams, events, graphs.
// Move-only; nothing leaks on an exception path.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "aipe/check.hpp"

namespace aipe {

// Allocates `bytes` of device memory; on failure throws CudaError with the requested and free sizes.
void* device_malloc(std::size_t bytes);
void* pinned_malloc(std::size_t bytes, unsigned flags = cudaHostAllocDefault);

namespace detail {
// Where an OwningBuffer's memory comes from and goes back to.
struct DeviceMemory {
  static void* allocate(std::size_t bytes) { return device_malloc(bytes); }
  static void release(void* p) { cudaFree(p); }
  static constexpr bool host_accessible = false;
};
struct PinnedMemory {
  static void* allocate(std::size_t bytes, unsigned flags = cudaHostAllocDefault) { return pinned_malloc(bytes, flags); }
  static void release(void* p) { cudaFreeHost(p); }
  static constexpr bool host_accessible = true;
};
}  // namespace detail

// `count` elements of T from `Memory`; move-only, freed on destruction or reset(). Extra constructor
// arguments go to Memory::allocate (the pinned allocation's flags).
template <class T, class Memory>
class OwningBuffer {
 public:
  OwningBuffer() = default;
  template <class... Args>
  explicit OwningBuffer(std::size_t count, Args... args) : count_(count) {
    if (count) ptr_ = static_cast<T*>(Memory::allocate(count * sizeof(T), args...));
  }
  ~OwningBuffer() { reset(); }
  OwningBuffer(OwningBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  OwningBuffer& operator=(OwningBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  OwningBuffer(const OwningBuffer&) = delete;
  OwningBuffer& operator=(const OwningBuffer&) = delete;

  void reset() {
    if (ptr_) Memory::release(ptr_);
    ptr_ = nullptr;
    count_ = 0;
  }
  T* get() const { return ptr_; }
  T& operator[](std::size_t i) const
    requires Memory::host_accessible
  {
    return ptr_[i];
  }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

template <class T>
using DeviceBuffer = OwningBuffer<T, detail::DeviceMemory>;
// Page-locked host memory: DMA-able, and device-visible with cudaHostAllocMapped.
template <class T>
using PinnedBuffer = OwningBuffer<T, detail::PinnedMemory>;

// The whole buffer copied to the host on `stream`, which is synchronized: what verify() compares.
template <class T>
std::vector<T> to_host(const DeviceBuffer<T>& b, cudaStream_t stream) {
  std::vector<T> h(b.size());
  if (b.size()) AIPE_CUDA(cudaMemcpyAsync(h.data(), b.get(), b.bytes(), cudaMemcpyDeviceToHost, stream));
  AIPE_CUDA(cudaStreamSynchronize(stream));
  return h;
}

class Stream {
 public:
  Stream() { AIPE_CUDA(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { if (s_) cudaStreamDestroy(s_); }
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept { std::swap(s_, o.s_); return *this; }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  operator cudaStream_t() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  explicit Event(unsigned flags = cudaEventDefault) { AIPE_CUDA(cudaEventCreateWithFlags(&e_, flags)); }
  ~Event() { if (e_) cudaEventDestroy(e_); }
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&& o) noexcept { std::swap(e_, o.e_); return *this; }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }
  operator cudaEvent_t() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// A graph definition: built node by node (Graph::create) or taken from a stream capture (Graph::capture).
class Graph {
 public:
  Graph() = default;
  explicit Graph(cudaGraph_t adopt) : g_(adopt) {}  // takes ownership
  static Graph create();
  // Captures what `record(s)` enqueues on `s`. Thread-local mode by default: another thread's unsafe
  // calls (cudaMalloc, ...) are not affected by this capture.
  template <class F>
  static Graph capture(cudaStream_t s, F&& record, cudaStreamCaptureMode mode = cudaStreamCaptureModeThreadLocal) {
    AIPE_CUDA(cudaStreamBeginCapture(s, mode));
    try {
      record(s);
    } catch (...) {
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(s, &g);  // ends the capture so the stream is usable; the partial graph is dropped
      if (g) cudaGraphDestroy(g);
      throw;
    }
    cudaGraph_t g = nullptr;
    AIPE_CUDA(cudaStreamEndCapture(s, &g));
    return Graph(g);
  }
  ~Graph() { reset(); }
  Graph(Graph&& o) noexcept : g_(std::exchange(o.g_, nullptr)) {}
  Graph& operator=(Graph&& o) noexcept { std::swap(g_, o.g_); return *this; }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  void reset() {
    if (g_) cudaGraphDestroy(g_);
    g_ = nullptr;
  }
  cudaGraph_t get() const { return g_; }
  operator cudaGraph_t() const { return g_; }
  explicit operator bool() const { return g_ != nullptr; }

 private:
  cudaGraph_t g_ = nullptr;
};

// An instantiated graph, ready to launch.
class GraphExec {
 public:
  GraphExec() = default;
  explicit GraphExec(cudaGraph_t g, unsigned long long flags = 0) { AIPE_CUDA(cudaGraphInstantiate(&e_, g, flags)); }
  ~GraphExec() { reset(); }
  GraphExec(GraphExec&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  GraphExec& operator=(GraphExec&& o) noexcept { std::swap(e_, o.e_); return *this; }
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  void reset() {
    if (e_) cudaGraphExecDestroy(e_);
    e_ = nullptr;
  }
  void upload(cudaStream_t s) const { AIPE_CUDA(cudaGraphUpload(e_, s)); }
  void launch(cudaStream_t s) const { AIPE_CUDA(cudaGraphLaunch(e_, s)); }
  cudaGraphExec_t get() const { return e_; }
  operator cudaGraphExec_t() const { return e_; }
  explicit operator bool() const { return e_ != nullptr; }

 private:
  cudaGraphExec_t e_ = nullptr;
};

}  // namespace aipe
