#include "aipe/comm/bench.hpp"

#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/comm/exact_check.hpp"
#include "aipe/comm/nccl_status.hpp"
#include "aipe/stats.hpp"
#include "nccl_api.hpp"

namespace aipe::comm {

void validate(const BenchOptions& o) {
  if (o.collectives.empty()) throw std::invalid_argument("comm bench: no collective selected");
  if (o.sizes.empty()) throw std::invalid_argument("comm bench: no message size");
  for (auto s : o.sizes)
    if (s <= 0) throw std::invalid_argument("comm bench: message size " + std::to_string(s) + " is not positive");
  if (o.iters < 1) throw std::invalid_argument("comm bench: iters must be at least 1");
  if (o.warmup < 0) throw std::invalid_argument("comm bench: warmup must not be negative");
  if (o.graph_launches < 1) throw std::invalid_argument("comm bench: graph_launches must be at least 1");
  if (o.timeout.count() <= 0) throw std::invalid_argument("comm bench: timeout must be positive");
}

#if AIPE_HAVE_NCCL
namespace {

const detail::NcclApi& api() {
  const detail::NcclApi* a = detail::nccl_api(nullptr);
  if (!a) throw NcclUnavailable(nccl_status().reason);
  return *a;
}

ncclDataType_t nccl_type(DataType t) {
  switch (t) {
    case DataType::int8: return ncclInt8;
    case DataType::uint8: return ncclUint8;
    case DataType::int32: return ncclInt32;
    case DataType::uint32: return ncclUint32;
    case DataType::int64: return ncclInt64;
    case DataType::uint64: return ncclUint64;
    case DataType::float16: return ncclFloat16;
    case DataType::float32: return ncclFloat32;
    case DataType::float64: return ncclFloat64;
    case DataType::bfloat16: return ncclBfloat16;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::prod: return ncclProd;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
    case ReduceOp::avg: return ncclAvg;
  }
  return ncclSum;
}

// Device memory for one rank's send or receive buffer: cudaMalloc, or ncclMemAlloc registered with the
// communicator (registered mode). Freed (deregistered first) on the buffer's device.
class CommBuffer {
 public:
  CommBuffer() = default;
  CommBuffer(std::size_t bytes, bool registered, Communicator& comm) : bytes_(bytes), device_(comm.device()) {
    if (!bytes) return;
    AIPE_CUDA(cudaSetDevice(device_));
    if (!registered) {
      ptr_ = device_malloc(bytes);
      return;
    }
    nccl_ = true;
    nccl_check(api().MemAlloc(&ptr_, bytes), "ncclMemAlloc", {});
    comm_ = comm.get();
    ncclResult_t r = api().CommRegister(comm_, ptr_, bytes, &handle_);
    if (r != ncclSuccess) {
      api().MemFree(ptr_);
      ptr_ = nullptr;
      handle_ = nullptr;
      nccl_check(r, "ncclCommRegister", {});
    }
  }
  ~CommBuffer() { reset(); }
  CommBuffer(CommBuffer&& o) noexcept { *this = std::move(o); }
  CommBuffer& operator=(CommBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_), std::swap(bytes_, o.bytes_), std::swap(device_, o.device_);
    std::swap(nccl_, o.nccl_), std::swap(comm_, o.comm_), std::swap(handle_, o.handle_);
    return *this;
  }
  void reset() {
    if (!ptr_) return;
    cudaSetDevice(device_);
    if (nccl_) {
      if (handle_ && comm_) api().CommDeregister(comm_, handle_);
      api().MemFree(ptr_);
    } else {
      cudaFree(ptr_);
    }
    ptr_ = nullptr, handle_ = nullptr, bytes_ = 0;
  }
  std::uint8_t* get() const { return static_cast<std::uint8_t*>(ptr_); }
  std::size_t bytes() const { return bytes_; }
  bool registered() const { return nccl_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  int device_ = 0;
  bool nccl_ = false;
  ncclComm* comm_ = nullptr;
  void* handle_ = nullptr;
};

// Where rank `rank`'s data sits for one row: nccl-tests' layouts.
struct Layout {
  std::uint8_t* send;
  std::uint8_t* recv;
  std::int64_t send_count, recv_count;  // elements
};

}  // namespace

struct Bench::Impl {
  struct Local {
    Communicator comm;  // first: destroyed last, after the buffers registered with it
    Stream stream;
    CommBuffer send, recv;
    DeviceBuffer<CheckResult> result;
    DeviceBuffer<double> scratch;
    std::vector<Event> start, stop;
    explicit Local(Communicator c) : comm(std::move(c)) {}
  };
  std::vector<std::unique_ptr<Local>> locals;
  std::vector<RankInfo> ranks;
  std::chrono::milliseconds timeout;
  int world = 1;
  bool registered = false;

  std::vector<Communicator*> comm_ptrs() {
    std::vector<Communicator*> v;
    for (auto& l : locals) v.push_back(&l->comm);
    return v;
  }
  // A group call failed: abort every communicator of this process (their buffers first), then throw.
  [[noreturn]] void fail(const std::string& msg) {
    for (auto& l : locals) {
      l->send.reset();
      l->recv.reset();
      l->comm.abort();
    }
    throw NcclError(msg);
  }
  void check(ncclResult_t r, const char* call) {
    if (r == ncclSuccess) return;
    std::string detail = api().GetErrorString(r);
    const char* last = api().GetLastError(locals.empty() ? nullptr : locals[0]->comm.get());
    if (last && *last) detail += " (" + std::string(last) + ")";
    fail(std::string(call) + " failed: " + detail);
  }

  // Waits for every local stream, polling NCCL for asynchronous errors; past the timeout every communicator
  // is aborted (a peer that died would otherwise hang this rank forever).
  void wait(const std::string& during) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      bool done = true;
      for (auto& l : locals) {
        cudaError_t e = cudaStreamQuery(l->stream);
        if (e == cudaErrorNotReady) {
          done = false;
          ncclResult_t async = ncclSuccess;
          if (api().CommGetAsyncError(l->comm.get(), &async) == ncclSuccess && async != ncclSuccess &&
              async != ncclInProgress)
            fail("rank " + std::to_string(l->comm.rank()) + ": NCCL error " + during + ": " +
                 api().GetErrorString(async));
        } else if (e != cudaSuccess) {
          throw_cuda_error(e, ("cudaStreamQuery " + during).c_str(), __FILE__, __LINE__);
        }
      }
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline)
        fail("timed out after " + std::to_string(timeout.count() / 1000) + " s " + during +
             " (a rank died, or was started with other options)");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  // Element-wise reduction of `k` doubles per local rank over the whole world (every rank gets the result).
  std::vector<double> reduce_world(const std::vector<std::vector<double>>& values, ncclRedOp_t op) {
    const std::size_t k = values.at(0).size();
    for (std::size_t i = 0; i < locals.size(); ++i) {
      auto& l = *locals[i];
      AIPE_CUDA(cudaSetDevice(l.comm.device()));
      if (l.scratch.size() < k) l.scratch = DeviceBuffer<double>(std::max<std::size_t>(k, 8));
      AIPE_CUDA(cudaMemcpyAsync(l.scratch.get(), values[i].data(), k * sizeof(double), cudaMemcpyHostToDevice,
                                l.stream));
    }
    check(api().GroupStart(), "ncclGroupStart");
    for (auto& l : locals)
      check(api().AllReduce(l->scratch.get(), l->scratch.get(), k, ncclFloat64, op, l->comm.get(), l->stream),
            "ncclAllReduce (gathering per-rank results)");
    check(api().GroupEnd(), "ncclGroupEnd");
    wait("while gathering per-rank results");
    std::vector<double> out(k);
    AIPE_CUDA(cudaSetDevice(locals[0]->comm.device()));
    AIPE_CUDA(cudaMemcpy(out.data(), locals[0]->scratch.get(), k * sizeof(double), cudaMemcpyDeviceToHost));
    return out;
  }

  void gather_rank_info() {
    struct Record {
      int rank, device;
      char host[64], pci[32], name[152];
    };
    static_assert(sizeof(Record) == 256);
    std::vector<DeviceBuffer<Record>> bufs;
    for (auto& l : locals) {
      Record r{};
      r.rank = l->comm.rank();
      r.device = l->comm.device();
      gethostname(r.host, sizeof r.host - 1);
      AIPE_CUDA(cudaSetDevice(r.device));
      cudaDeviceGetPCIBusId(r.pci, sizeof r.pci - 1, r.device);
      cudaDeviceProp p{};
      AIPE_CUDA(cudaGetDeviceProperties(&p, r.device));
      std::string(p.name).copy(r.name, sizeof r.name - 1);  // r is zeroed: stays terminated
      bufs.emplace_back(static_cast<std::size_t>(world) + 1);
      AIPE_CUDA(cudaMemcpy(bufs.back().get() + world, &r, sizeof r, cudaMemcpyHostToDevice));
    }
    check(api().GroupStart(), "ncclGroupStart");
    for (std::size_t i = 0; i < locals.size(); ++i)
      check(api().AllGather(bufs[i].get() + world, bufs[i].get(), sizeof(Record), ncclUint8, locals[i]->comm.get(),
                            locals[i]->stream),
            "ncclAllGather (rank information)");
    check(api().GroupEnd(), "ncclGroupEnd");
    wait("while gathering rank information");
    std::vector<Record> all(world);
    AIPE_CUDA(cudaSetDevice(locals[0]->comm.device()));
    AIPE_CUDA(cudaMemcpy(all.data(), bufs[0].get(), world * sizeof(Record), cudaMemcpyDeviceToHost));
    for (const auto& r : all) ranks.push_back({r.rank, r.device, r.host, r.pci, r.name});
  }

  Layout layout(const BenchOptions& o, Collective c, std::int64_t count, Local& l) const {
    const int eb = info(o.dtype).bytes;
    const std::int64_t block = count / world;
    const bool gather = c == Collective::all_gather, scatter = c == Collective::reduce_scatter;
    Layout x{l.send.get(), l.recv.get(), gather ? block : count, scatter ? block : count};
    if (o.inplace) {
      x.send = x.recv = l.recv.get();
      if (gather) x.send = l.recv.get() + l.comm.rank() * block * eb;
      if (scatter) x.recv = l.recv.get() + l.comm.rank() * block * eb;
    }
    return x;
  }

  // Enqueues one collective on every local rank (one group, as nccl-tests does).
  void launch(const BenchOptions& o, Collective c, std::int64_t count) {
    const auto& a = api();
    const ncclDataType_t dt = nccl_type(o.dtype);
    const ncclRedOp_t op = nccl_op(o.op);
    const int eb = info(o.dtype).bytes;
    check(a.GroupStart(), "ncclGroupStart");
    for (auto& lp : locals) {
      Local& l = *lp;
      const Layout x = layout(o, c, count, l);
      ncclComm_t comm = l.comm.get();
      const int r = l.comm.rank();
      const auto n = static_cast<std::size_t>(world);
      const std::size_t block = static_cast<std::size_t>(count) / n;
      switch (c) {
        case Collective::all_reduce:
          check(a.AllReduce(x.send, x.recv, count, dt, op, comm, l.stream), "ncclAllReduce");
          break;
        case Collective::all_gather:
          check(a.AllGather(x.send, x.recv, block, dt, comm, l.stream), "ncclAllGather");
          break;
        case Collective::reduce_scatter:
          check(a.ReduceScatter(x.send, x.recv, block, dt, op, comm, l.stream), "ncclReduceScatter");
          break;
        case Collective::all_to_all:  // nccl-tests' form: one send and one receive of a block per peer
          for (std::size_t p = 0; p < n; ++p) {
            check(a.Send(x.send + p * block * eb, block, dt, static_cast<int>(p), comm, l.stream), "ncclSend");
            check(a.Recv(x.recv + p * block * eb, block, dt, static_cast<int>(p), comm, l.stream), "ncclRecv");
          }
          break;
        case Collective::broadcast:
          check(a.Broadcast(x.send, x.recv, count, dt, 0, comm, l.stream), "ncclBroadcast");
          break;
        case Collective::reduce:
          check(a.Reduce(x.send, x.recv, count, dt, op, 0, comm, l.stream), "ncclReduce");
          break;
        case Collective::sendrecv:  // the ring r -> r+1
          check(a.Send(x.send, count, dt, (r + 1) % world, comm, l.stream), "ncclSend");
          check(a.Recv(x.recv, count, dt, (r - 1 + world) % world, comm, l.stream), "ncclRecv");
          break;
      }
    }
    check(a.GroupEnd(), "ncclGroupEnd");
  }

  // Poison every receive buffer (0xFF bytes: NaN in every floating type, -1 or the maximum in the integer
  // ones, never an expected value), then write the inputs.
  void fill(const BenchOptions& o, Collective c, std::int64_t count) {
    const int eb = info(o.dtype).bytes;
    const ReduceOp op = collective_reduces(c) ? o.op : ReduceOp::sum;
    for (auto& l : locals) {
      const Layout x = layout(o, c, count, *l);
      AIPE_CUDA(cudaSetDevice(l->comm.device()));
      AIPE_CUDA(cudaMemsetAsync(x.recv, 0xFF, static_cast<std::size_t>(x.recv_count) * eb, l->stream));
      fill_inputs(o.dtype, x.send, x.send_count, c, op, world, l->comm.rank(), l->stream);
    }
  }

  void ensure_buffers(const BenchOptions& o) {
    std::int64_t send = 0, recv = 0;
    const int eb = info(o.dtype).bytes;
    for (Collective c : o.collectives)
      for (auto s : o.sizes) {
        const auto b = byte_counts(c, element_count(c, s, eb, world), eb, world);
        send = std::max(send, b.send);
        recv = std::max(recv, o.inplace ? std::max(b.send, b.recv) : b.recv);
      }
    if (o.inplace) send = 0;
    for (auto& l : locals) {
      const bool same_mode = l->recv.registered() == o.registered;
      if (!same_mode || l->send.bytes() < static_cast<std::size_t>(send)) l->send = CommBuffer();
      if (!same_mode || l->recv.bytes() < static_cast<std::size_t>(recv)) l->recv = CommBuffer();
      if (!l->send.get() && send) l->send = CommBuffer(send, o.registered, l->comm);
      if (!l->recv.get() && recv) l->recv = CommBuffer(recv, o.registered, l->comm);
      AIPE_CUDA(cudaSetDevice(l->comm.device()));
      if (!l->result.size()) l->result = DeviceBuffer<CheckResult>(1);
      const std::size_t events = static_cast<std::size_t>(std::max(o.iters, o.graph_launches));
      while (l->start.size() < events) l->start.emplace_back(), l->stop.emplace_back();
    }
  }

  // This rank's median time per run, one per local rank, in microseconds.
  std::vector<double> time_runs(const BenchOptions& o, Collective c, std::int64_t count) {
    std::vector<double> medians;
    if (!o.graph) {
      for (int it = 0; it < o.iters; ++it) {
        for (auto& l : locals) AIPE_CUDA(cudaEventRecord(l->start[it], l->stream));
        launch(o, c, count);
        for (auto& l : locals) AIPE_CUDA(cudaEventRecord(l->stop[it], l->stream));
      }
      wait("while timing " + std::string(info(c).name));
      for (auto& l : locals) {
        std::vector<double> us;
        for (int it = 0; it < o.iters; ++it) {
          float ms = 0;
          AIPE_CUDA(cudaEventElapsedTime(&ms, l->start[it], l->stop[it]));
          us.push_back(ms * 1e3);
        }
        medians.push_back(summarize(us).median);
      }
      return medians;
    }
    // Graph mode: every local stream captures `iters` runs (NCCL records its kernels into the graphs of all
    // the communicators in a group); each launch then replays them without host launch overhead.
    std::vector<Graph> graphs;
    for (auto& l : locals) AIPE_CUDA(cudaStreamBeginCapture(l->stream, cudaStreamCaptureModeThreadLocal));
    try {
      for (int it = 0; it < o.iters; ++it) launch(o, c, count);
    } catch (...) {
      for (auto& l : locals) {
        cudaGraph_t g = nullptr;
        cudaStreamEndCapture(l->stream, &g);
        if (g) cudaGraphDestroy(g);
      }
      throw;
    }
    for (auto& l : locals) {
      cudaGraph_t g = nullptr;
      AIPE_CUDA(cudaStreamEndCapture(l->stream, &g));
      graphs.emplace_back(g);
    }
    std::vector<GraphExec> execs;
    for (std::size_t i = 0; i < locals.size(); ++i) {
      AIPE_CUDA(cudaSetDevice(locals[i]->comm.device()));
      execs.emplace_back(graphs[i]);
      execs.back().upload(locals[i]->stream);
    }
    for (std::size_t i = 0; i < locals.size(); ++i) execs[i].launch(locals[i]->stream);  // warm: first replay
    for (int g = 0; g < o.graph_launches; ++g) {
      for (std::size_t i = 0; i < locals.size(); ++i) {
        AIPE_CUDA(cudaEventRecord(locals[i]->start[g], locals[i]->stream));
        execs[i].launch(locals[i]->stream);
        AIPE_CUDA(cudaEventRecord(locals[i]->stop[g], locals[i]->stream));
      }
    }
    wait("while timing graph launches of " + std::string(info(c).name));
    for (auto& l : locals) {
      std::vector<double> us;
      for (int g = 0; g < o.graph_launches; ++g) {
        float ms = 0;
        AIPE_CUDA(cudaEventElapsedTime(&ms, l->start[g], l->stop[g]));
        us.push_back(ms * 1e3 / o.iters);
      }
      medians.push_back(summarize(us).median);
    }
    return medians;
  }

  BenchRow run_row(const BenchOptions& o, Collective c, std::int64_t size) {
    BenchRow row;
    row.collective = c;
    row.size_bytes = size;
    const int eb = info(o.dtype).bytes;
    row.count = element_count(c, size, eb, world);
    if (row.count == 0) {
      row.skipped = info(c).split_by_ranks ? "smaller than one element per rank" : "smaller than one element";
      return row;
    }
    if (o.inplace && (c == Collective::all_to_all || c == Collective::sendrecv)) {
      row.skipped = "no in-place form (send and receive buffers of a peer exchange must not overlap)";
      return row;
    }
    if (o.inplace && world == 1) {
      // The output already is the input: NCCL launches nothing, and a time would be an empty event pair.
      row.skipped = "in place on one rank: nothing to move (NCCL launches no work)";
      return row;
    }
    const std::string what = std::string(info(c).name) + " at " + std::to_string(size) + " B";
    if (o.check) {
      fill(o, c, row.count);
      launch(o, c, row.count);
      wait("while checking " + what);
      std::vector<std::vector<double>> counts;
      for (auto& l : locals) {
        const Layout x = layout(o, c, row.count, *l);
        AIPE_CUDA(cudaSetDevice(l->comm.device()));
        const ReduceOp op = collective_reduces(c) ? o.op : ReduceOp::sum;
        check_outputs(o.dtype, x.recv, x.recv_count, c, op, world, l->comm.rank(), row.count, l->result.get(),
                      l->stream);
        CheckResult h{};
        AIPE_CUDA(cudaMemcpyAsync(&h, l->result.get(), sizeof h, cudaMemcpyDeviceToHost, l->stream));
        AIPE_CUDA(cudaStreamSynchronize(l->stream));
        // [wrong, first index as rank * 2^40 + index, or a large sentinel]: summed and min-reduced below.
        const double first = h.wrong ? static_cast<double>(l->comm.rank()) * 1099511627776.0 + h.first : 1e300;
        counts.push_back({static_cast<double>(h.wrong), -first});
      }
      const auto sum = reduce_world(counts, ncclSum);
      const auto max = reduce_world(counts, ncclMax);
      row.wrong = static_cast<std::int64_t>(sum[0]);
      if (row.wrong > 0) {
        row.first_wrong = static_cast<std::int64_t>(std::fmod(-max[1], 1099511627776.0));
        return row;  // a wrong result gets no time
      }
    }
    for (int i = 0; i < o.warmup; ++i) launch(o, c, row.count);
    wait("while warming up " + what);
    const std::vector<double> t = time_runs(o, c, row.count);
    std::vector<std::vector<double>> mx, sm;
    for (double v : t) mx.push_back({v, -v}), sm.push_back({v});
    const auto m = reduce_world(mx, ncclMax);
    const auto s = reduce_world(sm, ncclSum);
    row.timed = true;
    row.max_us = m[0];
    row.min_us = -m[1];
    row.time_us = s[0] / world;
    row.algbw_gbs = algbw_gbs(size_for_bandwidth(c, row.count, eb), row.time_us * 1e-6);
    row.busbw_gbs = busbw_gbs(c, size_for_bandwidth(c, row.count, eb), row.time_us * 1e-6, world);
    return row;
  }

  // The bytes the bandwidths count: the message actually moved (the element count times the element size,
  // after rounding to whole elements per rank), as nccl-tests does.
  static std::int64_t size_for_bandwidth(Collective, std::int64_t count, int eb) { return count * eb; }
};

Bench::Bench(std::vector<Communicator> comms, std::chrono::milliseconds timeout) : impl_(std::make_unique<Impl>()) {
  if (comms.empty()) throw std::invalid_argument("comm bench: no communicator");
  impl_->timeout = timeout;
  impl_->world = comms[0].world_size();
  for (auto& c : comms) {
    AIPE_CUDA(cudaSetDevice(c.device()));
    impl_->locals.push_back(std::make_unique<Impl::Local>(std::move(c)));
  }
  impl_->gather_rank_info();
}

Bench::~Bench() {
  // Buffers registered with a communicator go before it.
  if (impl_)
    for (auto& l : impl_->locals) l->send.reset(), l->recv.reset();
}

int Bench::world_size() const { return impl_->world; }
bool Bench::is_root() const {
  for (auto& l : impl_->locals)
    if (l->comm.rank() == 0) return true;
  return false;
}
const std::vector<RankInfo>& Bench::ranks() const { return impl_->ranks; }

std::vector<BenchRow> Bench::run(const BenchOptions& o) {
  validate(o);
  impl_->timeout = o.timeout;
  impl_->ensure_buffers(o);
  std::vector<BenchRow> rows;
  for (Collective c : o.collectives)
    for (auto s : o.sizes) rows.push_back(impl_->run_row(o, c, s));
  return rows;
}

std::string Bench::host_check(const BenchOptions& o, Collective c, std::int64_t size_bytes, int local) {
  BenchOptions one = o;
  one.collectives = {c};
  one.sizes = {size_bytes};
  validate(one);
  impl_->ensure_buffers(one);
  const int eb = info(o.dtype).bytes;
  const std::int64_t count = element_count(c, size_bytes, eb, impl_->world);
  if (count == 0) return "";
  impl_->fill(one, c, count);
  impl_->launch(one, c, count);
  impl_->wait("in host_check");
  auto& l = *impl_->locals.at(local);
  const Layout x = impl_->layout(one, c, count, l);
  std::vector<std::uint8_t> h(static_cast<std::size_t>(x.recv_count) * eb);
  AIPE_CUDA(cudaSetDevice(l.comm.device()));
  AIPE_CUDA(cudaMemcpy(h.data(), x.recv, h.size(), cudaMemcpyDeviceToHost));
  const ReduceOp op = collective_reduces(c) ? o.op : ReduceOp::sum;
  std::ostringstream bad;
  int shown = 0;
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < x.recv_count; ++i) {
    auto want = expected_value(c, op, impl_->world, l.comm.rank(), count, i);
    if (!want) continue;
    const double got = element_as_double(o.dtype, h.data(), i);
    if (got == static_cast<double>(*want)) continue;  // NaN never equals
    ++wrong;
    if (shown++ < 5) bad << " [" << i << "] expected " << *want << ", got " << got << ";";
  }
  if (!wrong) return "";
  return std::string(info(c).name) + " " + std::string(info(o.dtype).name) + " " + reduce_op_name(op) +
         (o.inplace ? " in-place " : " ") + std::to_string(size_bytes) + " B (count " + std::to_string(count) +
         "), rank " + std::to_string(l.comm.rank()) + ": " + std::to_string(wrong) + " of " +
         std::to_string(x.recv_count) + " wrong:" + bad.str();
}

#else  // built without NCCL

struct Bench::Impl {};
Bench::Bench(std::vector<Communicator>, std::chrono::milliseconds) { throw NcclUnavailable(nccl_status().reason); }
Bench::~Bench() = default;
int Bench::world_size() const { return 0; }
bool Bench::is_root() const { return false; }
const std::vector<RankInfo>& Bench::ranks() const {
  static const std::vector<RankInfo> none;
  return none;
}
std::vector<BenchRow> Bench::run(const BenchOptions&) { throw NcclUnavailable(nccl_status().reason); }
std::string Bench::host_check(const BenchOptions&, Collective, std::int64_t, int) {
  throw NcclUnavailable(nccl_status().reason);
}

#endif

}  // namespace aipe::comm
