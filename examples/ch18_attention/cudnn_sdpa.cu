// cuDNN's fused SDPA through the graph (backend) API: the graph, its plan and its launch (cudnn_sdpa.hpp says
// which graph and why). Host code only; a .cu so that it builds with the example folder it belongs to.
#include "cudnn_sdpa.hpp"

#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "aipe/check.hpp"

namespace aipe::ch18 {

#if !AIPE_HAVE_CUDNN

CudnnSdpa::~CudnnSdpa() = default;
void CudnnSdpa::release() {}
std::string CudnnSdpa::build_graph(const CudnnSdpaProblem&, bool) { return ""; }
std::string CudnnSdpa::build(const CudnnSdpaProblem&) {
  return "cuDNN headers not found at configure time (set -DAIPE_CUDNN_ROOT=<prefix holding include/cudnn.h>)";
}
void CudnnSdpa::run(const void*, const void*, const void*, void*, float*, void*, cudaStream_t) {
  throw std::logic_error("cudnn rung run without cuDNN");
}

#else

namespace {

// The few entry points the rung calls, resolved from the library at run time.
struct CudnnApi {
  size_t (*getVersion)();
  const char* (*getErrorString)(cudnnStatus_t);
  void (*getLastErrorString)(char*, size_t);
  cudnnStatus_t (*create)(cudnnHandle_t*);
  cudnnStatus_t (*destroy)(cudnnHandle_t);
  cudnnStatus_t (*setStream)(cudnnHandle_t, cudaStream_t);
  cudnnStatus_t (*createDescriptor)(cudnnBackendDescriptorType_t, cudnnBackendDescriptor_t*);
  cudnnStatus_t (*destroyDescriptor)(cudnnBackendDescriptor_t);
  cudnnStatus_t (*finalize)(cudnnBackendDescriptor_t);
  cudnnStatus_t (*setAttribute)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t, cudnnBackendAttributeType_t,
                                int64_t, const void*);
  cudnnStatus_t (*getAttribute)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t, cudnnBackendAttributeType_t,
                                int64_t, int64_t*, void*);
  cudnnStatus_t (*execute)(cudnnHandle_t, cudnnBackendDescriptor_t, cudnnBackendDescriptor_t);
  std::string path;
  std::string error;  // why loading failed ("" when loaded)
};

// cuDNN 9 is a small dispatcher (libcudnn.so.9) over sub-libraries it opens by soname: loading those from the
// same folder first (RTLD_GLOBAL) lets it find them when their folder is not on the loader's path.
void* open_cudnn_at(const std::string& dir) {
  for (const char* sub : {"libcudnn_graph.so.9", "libcudnn_engines_precompiled.so.9",
                          "libcudnn_engines_runtime_compiled.so.9", "libcudnn_heuristic.so.9", "libcudnn_ops.so.9",
                          "libcudnn_cnn.so.9", "libcudnn_adv.so.9"})
    dlopen((dir + "/" + sub).c_str(), RTLD_NOW | RTLD_GLOBAL);  // optional ones may be absent
  return dlopen((dir + "/libcudnn.so.9").c_str(), RTLD_NOW | RTLD_GLOBAL);
}

// The runtime-compiled engines (cuDNN's fused attention among them) open NVRTC by soname,
// libnvrtc.so.<CUDA major>; loading it first from where it usually lives lets them find it when its folder is
// not on the loader's path. Best effort: without it those engines are simply not offered.
void preload_nvrtc() {
  const std::string so = "libnvrtc.so." + std::to_string(CUDART_VERSION / 1000);
  if (dlopen(so.c_str(), RTLD_NOW | RTLD_GLOBAL)) return;
  for (const char* dir : {"/usr/local/cuda/lib64", "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib",
                          "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib"})
    if (dlopen((std::string(dir) + "/" + so).c_str(), RTLD_NOW | RTLD_GLOBAL)) return;
}

const CudnnApi& api() {
  static const CudnnApi a = [] {
    CudnnApi r{};
    preload_nvrtc();
    void* lib = nullptr;
    std::vector<std::string> tried;
    auto dir_of = [](const std::string& file) { return file.substr(0, file.find_last_of('/')); };
#ifdef AIPE_CUDNN_LIBRARY
    tried.push_back(dir_of(AIPE_CUDNN_LIBRARY));
    lib = open_cudnn_at(tried.back());
    if (lib) r.path = AIPE_CUDNN_LIBRARY;
#endif
    if (!lib) {
      tried.push_back("libcudnn.so.9 (loader path)");
      lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_GLOBAL);
      if (lib) r.path = "libcudnn.so.9";
    }
    if (!lib) {
      const std::string torch = "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib";
      tried.push_back(torch);
      lib = open_cudnn_at(torch);
      if (lib) r.path = torch + "/libcudnn.so.9";
    }
    if (!lib) {
      r.error = "cuDNN library not found (tried";
      for (const auto& t : tried) r.error += " " + t;
      r.error += ")";
      return r;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn && r.error.empty()) r.error = std::string("cuDNN library lacks ") + name;
    };
    sym(r.getVersion, "cudnnGetVersion");
    sym(r.getErrorString, "cudnnGetErrorString");
    sym(r.getLastErrorString, "cudnnGetLastErrorString");
    sym(r.create, "cudnnCreate");
    sym(r.destroy, "cudnnDestroy");
    sym(r.setStream, "cudnnSetStream");
    sym(r.createDescriptor, "cudnnBackendCreateDescriptor");
    sym(r.destroyDescriptor, "cudnnBackendDestroyDescriptor");
    sym(r.finalize, "cudnnBackendFinalize");
    sym(r.setAttribute, "cudnnBackendSetAttribute");
    sym(r.getAttribute, "cudnnBackendGetAttribute");
    sym(r.execute, "cudnnBackendExecute");
    if (r.error.empty() && r.getVersion() < 90000)
      r.error = "cuDNN " + std::to_string(r.getVersion()) + " is older than 9.0 (the graph API's SDPA needs 9)";
    return r;
  }();
  return a;
}

// A cuDNN failure inside build(): carries cuDNN's status and its last error message.
struct CudnnFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void ok(cudnnStatus_t s, const char* what) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  const CudnnApi& a = api();
  char last[1024] = {0};
  a.getLastErrorString(last, sizeof last);
  throw CudnnFailure(std::string(what) + ": " + a.getErrorString(s) + (last[0] ? std::string(" (") + last + ")" : ""));
}

// Descriptors are created into `owned`, so that one release() frees every one of them on any path.
class GraphBuilder {
 public:
  explicit GraphBuilder(std::vector<void*>& owned) : owned_(owned) {}

  cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t t) {
    cudnnBackendDescriptor_t d = nullptr;
    ok(api().createDescriptor(t, &d), "cudnnBackendCreateDescriptor");
    owned_.push_back(d);
    return d;
  }
  template <class T>
  void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t n, cudnnBackendAttributeType_t t, const T* v,
           int64_t count = 1) {
    ok(api().setAttribute(d, n, t, count, v), "cudnnBackendSetAttribute");
  }
  void set_desc(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t n, cudnnBackendDescriptor_t v) {
    set(d, n, CUDNN_TYPE_BACKEND_DESCRIPTOR, &v);
  }
  void finalize(cudnnBackendDescriptor_t d, const char* what) { ok(api().finalize(d), what); }

  // A tensor: dims and strides in cuDNN's order; uid 0 marks a virtual intermediate (given a fresh uid).
  cudnnBackendDescriptor_t tensor(cudnnDataType_t type, std::vector<int64_t> dims, std::vector<int64_t> strides,
                                  int64_t uid, bool by_value = false) {
    const bool is_virtual = uid == 0;
    if (is_virtual) uid = next_virtual_++;
    auto t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t align = 16;
    set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &type);
    set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims.data(), int64_t(dims.size()));
    set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), int64_t(strides.size()));
    set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid);
    set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &align);
    set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &is_virtual);
    if (by_value) set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, &by_value);
    finalize(t, "tensor descriptor");
    return t;
  }
  // A by-value scalar operand (dims [1,1,1,1]).
  cudnnBackendDescriptor_t scalar(cudnnDataType_t type, int64_t uid) {
    return tensor(type, {1, 1, 1, 1}, {1, 1, 1, 1}, uid, true);
  }

  // y = op(x [, b [, t]]) with the given math precision; axis for GEN_INDEX.
  cudnnBackendDescriptor_t pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                                     cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
                                     cudnnBackendDescriptor_t y, int64_t axis = -1) {
    auto pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode);
    set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &prec);
    if (axis >= 0) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, &axis);
    finalize(pw, "pointwise descriptor");
    auto op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
    if (t) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
    finalize(op, "pointwise operation");
    ops.push_back(op);
    return op;
  }
  void reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    auto rd = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    set(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &mode);
    set(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32);
    finalize(rd, "reduction descriptor");
    auto op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
    finalize(op, "reduction operation");
    ops.push_back(op);
  }
  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    auto mm = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    set(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32);
    finalize(mm, "matmul descriptor");
    auto op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm);
    finalize(op, "matmul operation");
    ops.push_back(op);
  }

  std::vector<cudnnBackendDescriptor_t> ops;

 private:
  std::vector<void*>& owned_;
  int64_t next_virtual_ = 100;
};

// Unique ids of the tensors bound at run time.
enum : int64_t { kQ = 1, kK, kV, kO, kLse, kScale, kSkv, kSq, kNegInf };

}  // namespace

CudnnSdpa::~CudnnSdpa() { release(); }

void CudnnSdpa::release() {
  if (owned_.empty() && !handle_) return;  // nothing built: do not load the library just to free nothing
  const CudnnApi& a = api();
  if (!a.error.empty()) return;
  for (auto it = owned_.rbegin(); it != owned_.rend(); ++it) a.destroyDescriptor(static_cast<cudnnBackendDescriptor_t>(*it));
  owned_.clear();
  plan_ = nullptr;
  if (handle_) a.destroy(static_cast<cudnnHandle_t>(handle_));
  handle_ = nullptr;
}

std::string CudnnSdpa::build(const CudnnSdpaProblem& p) {
  release();
  if (p.causal && p.seq_q > p.seq_kv)
    return "cuDNN's bottom-right causal mask needs seq_q <= seq_kv (rows that see no key are not defined there)";
  const CudnnApi& a = api();
  if (!a.error.empty()) return a.error;
  // The training graph (with the LSE statistics) first, as PyTorch's cuDNN backend builds it; where cuDNN takes
  // no such graph, the inference graph (no LSE: the example then checks O alone).
  const std::string with_stats = build_graph(p, true);
  if (with_stats.empty()) return "";
  const std::string without = build_graph(p, false);
  if (without.empty()) return "";
  return with_stats + "; without the statistics: " + without;
}

std::string CudnnSdpa::build_graph(const CudnnSdpaProblem& p, bool stats) {
  release();
  has_lse_ = stats;
  const CudnnApi& a = api();
  const size_t ver = a.getVersion();
  library_ = "cuDNN " + std::to_string(ver / 10000) + "." + std::to_string(ver / 100 % 100) + "." +
             std::to_string(ver % 100) + " (" + a.path + ")";
  try {
    GraphBuilder g(owned_);
    const int64_t b = p.batch, hq = p.heads, hk = p.kv_heads, sq = p.seq_q, skv = p.seq_kv, d = p.d;
    const cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT, i32 = CUDNN_DATA_INT32,
                          boolean = CUDNN_DATA_BOOLEAN;
    // aipe's [b][s][h][d] seen as cuDNN's (b, h, s, d); K^T swaps the last two dims and strides.
    auto Q = g.tensor(bf16, {b, hq, sq, d}, {p.q_batch, p.q_head, p.q_row, 1}, kQ);
    auto KT = g.tensor(bf16, {b, hk, d, skv}, {p.kv_batch, p.kv_head, 1, p.kv_row}, kK);
    auto V = g.tensor(bf16, {b, hk, skv, d}, {p.kv_batch, p.kv_head, p.kv_row, 1}, kV);
    auto O = g.tensor(bf16, {b, hq, sq, d}, {p.q_batch, p.q_head, p.q_row, 1}, kO);
    auto LSE = g.tensor(f32, {b, hq, sq, 1}, {hq * sq, sq, 1, 1}, kLse);
    const std::vector<int64_t> sdim{b, hq, sq, skv}, sstr{hq * sq * skv, sq * skv, skv, 1};
    const std::vector<int64_t> rdim{b, hq, sq, 1}, rstr{hq * sq, sq, 1, 1};

    auto S0 = g.tensor(f32, sdim, sstr, 0);
    g.matmul(Q, KT, S0);
    auto S1 = g.tensor(f32, sdim, sstr, 0);
    g.pointwise(CUDNN_POINTWISE_MUL, f32, S0, g.scalar(f32, kScale), nullptr, S1);
    auto S = S1;
    if (p.causal) {
      auto row = g.tensor(i32, sdim, sstr, 0), col = g.tensor(i32, sdim, sstr, 0);
      // Index generation computes in FP32 and writes INT32, the shifts in INT32, the compare in BOOLEAN
      // (the precisions cudnn-frontend gives these ops, which the fused engine's pattern expects).
      g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, S, nullptr, nullptr, row, 2);
      g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, S, nullptr, nullptr, col, 3);
      if (skv != sq) {  // bottom-right: shift the row index by s_kv - s_q
        auto r1 = g.tensor(i32, sdim, sstr, 0), r2 = g.tensor(i32, sdim, sstr, 0);
        g.pointwise(CUDNN_POINTWISE_ADD, i32, row, g.scalar(i32, kSkv), nullptr, r1);
        g.pointwise(CUDNN_POINTWISE_SUB, i32, r1, g.scalar(i32, kSq), nullptr, r2);
        row = r2;
      }
      auto keep = g.tensor(boolean, sdim, sstr, 0);
      g.pointwise(CUDNN_POINTWISE_CMP_GE, boolean, row, col, nullptr, keep);
      auto Sm = g.tensor(f32, sdim, sstr, 0);
      g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, S, g.scalar(f32, kNegInf), keep, Sm);
      S = Sm;
    }
    auto m = g.tensor(f32, rdim, rstr, 0);
    g.reduction(CUDNN_REDUCE_TENSOR_MAX, S, m);
    auto Sc = g.tensor(f32, sdim, sstr, 0), E = g.tensor(f32, sdim, sstr, 0);
    g.pointwise(CUDNN_POINTWISE_SUB, f32, S, m, nullptr, Sc);
    g.pointwise(CUDNN_POINTWISE_EXP, f32, Sc, nullptr, nullptr, E);
    auto l = g.tensor(f32, rdim, rstr, 0), logl = g.tensor(f32, rdim, rstr, 0);
    g.reduction(CUDNN_REDUCE_TENSOR_ADD, E, l);
    if (stats) {
      g.pointwise(CUDNN_POINTWISE_LOG, f32, l, nullptr, nullptr, logl);
      g.pointwise(CUDNN_POINTWISE_ADD, f32, m, logl, nullptr, LSE);
    }
    auto P = g.tensor(bf16, sdim, sstr, 0);
    g.pointwise(CUDNN_POINTWISE_DIV, f32, E, l, nullptr, P);
    g.matmul(P, V, O);

    // The operation graph (it needs the handle, hence a GPU; the operations above do not), the heuristics'
    // engine configurations, and the first that gives a plan.
    cudnnHandle_t h = nullptr;
    ok(a.create(&h), "cudnnCreate");
    handle_ = h;
    auto graph = g.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    g.set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g.ops.data(), int64_t(g.ops.size()));
    g.set(graph, static_cast<cudnnBackendAttributeName_t>(800) /* OPERATIONGRAPH_HANDLE */, CUDNN_TYPE_HANDLE, &h);
    g.finalize(graph, "operation graph (cuDNN does not take this SDPA graph)");
    auto heur = g.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    g.set_desc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    g.set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode);
    g.finalize(heur, "engine heuristics");
    int64_t count = 0;
    ok(a.getAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
       "engine heuristics (count)");
    if (count < 1) return "cuDNN's heuristics offer no engine for this SDPA graph";
    std::vector<cudnnBackendDescriptor_t> cfgs(static_cast<std::size_t>(count));
    for (auto& c : cfgs) c = g.make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t got = 0;
    ok(a.getAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, cfgs.data()),
       "engine heuristics (results)");
    std::string last_error;
    for (int64_t i = 0; i < got && !plan_; ++i) {
      auto plan = g.make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      try {
        g.set(plan, static_cast<cudnnBackendAttributeName_t>(400) /* EXECUTION_PLAN_HANDLE */, CUDNN_TYPE_HANDLE, &h);
        g.set_desc(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[std::size_t(i)]);
        g.finalize(plan, "execution plan");
        plan_ = plan;
      } catch (const CudnnFailure& e) {
        last_error = e.what();
      }
    }
    if (!plan_) return "no cuDNN engine builds a plan for this SDPA graph: " + last_error;
    int64_t ws = 0;
    ok(a.getAttribute(static_cast<cudnnBackendDescriptor_t>(plan_), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                      CUDNN_TYPE_INT64, 1, &got, &ws),
       "plan workspace size");
    workspace_bytes_ = static_cast<std::size_t>(ws);
  } catch (const CudnnFailure& e) {
    release();
    return e.what();
  }
  scale_ = p.scale;
  s_kv_ = p.seq_kv;
  s_q_ = p.seq_q;
  // cuDNN before 9.10 wants the lowest float rather than -inf for a masked score (as cudnn-frontend does).
  neg_inf_ = ver < 91000 ? -3.402823466e38f : -INFINITY;
  scalar_uids_ = {kScale};
  if (p.causal) scalar_uids_.push_back(kNegInf);
  if (p.causal && p.seq_kv != p.seq_q) {
    scalar_uids_.push_back(kSkv);
    scalar_uids_.push_back(kSq);
  }
  return "";
}

void CudnnSdpa::run(const void* q, const void* k, const void* v, void* o, float* lse, void* workspace,
                    cudaStream_t stream) {
  if (!plan_) throw std::logic_error("cudnn rung run without a plan");
  const CudnnApi& a = api();
  auto h = static_cast<cudnnHandle_t>(handle_);
  auto check = [&](cudnnStatus_t s, const char* what) {
    if (s == CUDNN_STATUS_SUCCESS) return;
    char last[1024] = {0};
    a.getLastErrorString(last, sizeof last);
    throw std::runtime_error(std::string(what) + ": " + a.getErrorString(s) + " " + last);
  };
  check(a.setStream(h, stream), "cudnnSetStream");
  // By-value scalars are read from host memory when the launch is enqueued.
  std::vector<int64_t> uids{kQ, kK, kV, kO};
  std::vector<void*> ptrs{const_cast<void*>(q), const_cast<void*>(k), const_cast<void*>(v), o};
  if (has_lse_) {
    uids.push_back(kLse);
    ptrs.push_back(lse);
  }
  for (int64_t u : scalar_uids_) {
    uids.push_back(u);
    ptrs.push_back(u == kScale ? static_cast<void*>(&scale_) : u == kNegInf ? static_cast<void*>(&neg_inf_)
                   : u == kSkv ? static_cast<void*>(&s_kv_) : static_cast<void*>(&s_q_));
  }
  const int64_t n = int64_t(uids.size());
  cudnnBackendDescriptor_t pack = nullptr;
  check(a.createDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack), "variant pack");
  struct Guard {
    const CudnnApi& a;
    cudnnBackendDescriptor_t d;
    ~Guard() { a.destroyDescriptor(d); }
  } guard{a, pack};
  check(a.setAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids.data()), "variant pack uids");
  check(a.setAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs.data()), "variant pack data");
  check(a.setAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace), "variant pack workspace");
  check(a.finalize(pack), "variant pack");
  check(a.execute(h, static_cast<cudnnBackendDescriptor_t>(plan_), pack), "cudnnBackendExecute");
}

#endif

}  // namespace aipe::ch18
