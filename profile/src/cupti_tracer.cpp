#include "aipe/profile/cupti_tracer.hpp"

#include <cupti_activity.h>
#include <cupti_result.h>
#include <cupti_version.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unistd.h>

namespace aipe::profile {

namespace {

#if CUPTI_API_VERSION >= 130000
using KernelRecord = CUpti_ActivityKernel10;
using MemcpyRecord = CUpti_ActivityMemcpy6;
#else
using KernelRecord = CUpti_ActivityKernel9;
using MemcpyRecord = CUpti_ActivityMemcpy5;
#endif
using MemsetRecord = CUpti_ActivityMemset4;
using MarkerRecord = CUpti_ActivityMarker2;

// The CUPTI entry points aipe uses, resolved with dlsym.
struct Api {
  void* lib = nullptr;
  std::string path;
  CUptiResult (*enable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*disable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*register_callbacks)(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc) = nullptr;
  CUptiResult (*flush_all)(uint32_t) = nullptr;
  CUptiResult (*next_record)(uint8_t*, size_t, CUpti_Activity**) = nullptr;
  CUptiResult (*dropped)(CUcontext, uint32_t, size_t*) = nullptr;
  CUptiResult (*result_string)(CUptiResult, const char**) = nullptr;
};

std::vector<std::string> candidates() {
  std::vector<std::string> c;
  if (const char* p = std::getenv("AIPE_CUPTI_LIB"); p && *p) c.push_back(p);
  for (const char* env : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* h = std::getenv(env); h && *h) {
      c.push_back(std::string(h) + "/lib64/libcupti.so");
      c.push_back(std::string(h) + "/extras/CUPTI/lib64/libcupti.so");
    }
  for (const char* d : {"/usr/local/cuda/lib64", "/usr/local/cuda/lib", "/usr/local/cuda/extras/CUPTI/lib64",
                        "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"})
    c.push_back(std::string(d) + "/libcupti.so");
  c.push_back("libcupti.so");  // the loader's own search path (LD_LIBRARY_PATH, ld.so.cache)
  return c;
}

std::string versioned(const std::string& p) {
  // Prefer the soname CUPTI ships with the CUDA major aipe was built against.
  return p + "." + std::to_string(CUPTI_API_VERSION / 10000);
}

Api& api() {
  static Api a;
  return a;
}

bool load(std::string* why) {
  Api& a = api();
  if (a.lib) return true;
  std::string tried;
  for (const auto& base : candidates()) {
    for (const auto& p : {versioned(base), base}) {
      void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_GLOBAL);
      if (!h) {
        tried += (tried.empty() ? "" : ", ") + p;
        continue;
      }
      auto sym = [&](auto& fn, const char* name) {
        fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
        return fn != nullptr;
      };
      bool ok = sym(a.enable, "cuptiActivityEnable") && sym(a.disable, "cuptiActivityDisable") &&
                sym(a.register_callbacks, "cuptiActivityRegisterCallbacks") &&
                sym(a.flush_all, "cuptiActivityFlushAll") && sym(a.next_record, "cuptiActivityGetNextRecord") &&
                sym(a.dropped, "cuptiActivityGetNumDroppedRecords") && sym(a.result_string, "cuptiGetResultString");
      if (!ok) {
        dlclose(h);
        tried += (tried.empty() ? "" : ", ") + p + " (missing symbols)";
        continue;
      }
      a.lib = h;
      // The path the loader actually resolved: NVTX must load the same library.
      char real[4096] = {0};
      if (dlinfo(h, RTLD_DI_ORIGIN, real) == 0 && real[0]) {
        const auto slash = p.rfind('/');
        a.path = std::string(real) + "/" + (slash == std::string::npos ? p : p.substr(slash + 1));
      } else {
        a.path = p;
      }
      return true;
    }
  }
  if (why) *why = "CUPTI (libcupti.so) not found; tried " + tried + ". Install the CUDA toolkit's CUPTI or set AIPE_CUPTI_LIB";
  return false;
}

void check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* s = "unknown CUPTI error";
  if (api().result_string) api().result_string(r, &s);
  throw std::runtime_error(std::string(what) + ": " + s);
}

// Records arrive in buffers from CUPTI's own thread; they are decoded under a lock.
struct Sink {
  std::mutex m;
  std::vector<Activity> acts;
  std::map<std::uint32_t, Activity> open_ranges;  // NVTX range id -> start record
  std::uint64_t dropped = 0;
};
Sink& sink() {
  static Sink s;
  return s;
}

constexpr size_t kBufferBytes = 8 << 20;

void CUPTIAPI on_request(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

const char* memcpy_kind(std::uint8_t k) {
  switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH: return "HtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: return "PtoP";
    default: return "other";
  }
}

std::string demangle(const char* name) {
  if (!name) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  return out;
}

void decode(CUpti_Activity* rec, Sink& s) {
  switch (rec->kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
      const auto* k = reinterpret_cast<const KernelRecord*>(rec);
      Activity a;
      a.kind = Activity::Kind::kernel;
      a.name = demangle(k->name);
      a.start_ns = k->start;
      a.end_ns = k->end;
      a.device = k->deviceId;
      a.stream = k->streamId;
      a.correlation = k->correlationId;
      a.args["grid"] = std::to_string(k->gridX) + "x" + std::to_string(k->gridY) + "x" + std::to_string(k->gridZ);
      a.args["block"] = std::to_string(k->blockX) + "x" + std::to_string(k->blockY) + "x" + std::to_string(k->blockZ);
      a.args["registers"] = std::to_string(k->registersPerThread);
      a.args["shared memory"] = std::to_string(k->staticSharedMemory + k->dynamicSharedMemory) + " B";
      s.acts.push_back(std::move(a));
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
      const auto* m = reinterpret_cast<const MemcpyRecord*>(rec);
      Activity a;
      a.kind = Activity::Kind::memcpy;
      a.name = std::string("memcpy ") + memcpy_kind(m->copyKind);
      a.start_ns = m->start;
      a.end_ns = m->end;
      a.device = m->deviceId;
      a.stream = m->streamId;
      a.correlation = m->correlationId;
      a.bytes = m->bytes;
      s.acts.push_back(std::move(a));
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
      const auto* m = reinterpret_cast<const MemsetRecord*>(rec);
      Activity a;
      a.kind = Activity::Kind::memset;
      a.name = "memset";
      a.start_ns = m->start;
      a.end_ns = m->end;
      a.device = m->deviceId;
      a.stream = m->streamId;
      a.correlation = m->correlationId;
      a.bytes = m->bytes;
      s.acts.push_back(std::move(a));
      break;
    }
    case CUPTI_ACTIVITY_KIND_MARKER: {
      const auto* m = reinterpret_cast<const MarkerRecord*>(rec);
      if (m->flags & CUPTI_ACTIVITY_FLAG_MARKER_START) {
        Activity a;
        a.kind = Activity::Kind::range;
        a.name = m->name ? m->name : "range";
        a.start_ns = a.end_ns = m->timestamp;
        a.thread = m->objectKind == CUPTI_ACTIVITY_OBJECT_THREAD ? m->objectId.pt.threadId : 0;
        if (m->domain && *m->domain) a.args["domain"] = m->domain;
        s.open_ranges[m->id] = std::move(a);
      } else if (m->flags & CUPTI_ACTIVITY_FLAG_MARKER_END) {
        auto it = s.open_ranges.find(m->id);
        if (it != s.open_ranges.end()) {
          it->second.end_ns = m->timestamp;
          s.acts.push_back(std::move(it->second));
          s.open_ranges.erase(it);
        }
      }
      break;
    }
    default: break;
  }
}

void CUPTIAPI on_complete(CUcontext ctx, uint32_t stream, uint8_t* buffer, size_t, size_t valid) {
  Sink& s = sink();
  {
    std::lock_guard<std::mutex> lock(s.m);
    CUpti_Activity* rec = nullptr;
    while (api().next_record(buffer, valid, &rec) == CUPTI_SUCCESS) decode(rec, s);
    size_t dropped = 0;
    if (api().dropped(ctx, stream, &dropped) == CUPTI_SUCCESS) s.dropped += dropped;
  }
  std::free(buffer);
}

const CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                     CUPTI_ACTIVITY_KIND_MEMSET, CUPTI_ACTIVITY_KIND_MARKER};

}  // namespace

struct CuptiTracer::Impl {
  bool running = false;
};

std::optional<std::string> CuptiTracer::locate(std::string* why) {
  if (!load(why)) return std::nullopt;
  return api().path;
}

CuptiTracer::CuptiTracer() : impl_(std::make_unique<Impl>()) {
  std::string why;
  if (!load(&why)) throw std::runtime_error(why);
  // NVTX calls are routed to the library this variable names; it is read at the first NVTX call.
  ::setenv("NVTX_INJECTION64_PATH", api().path.c_str(), 0);
  check(api().register_callbacks(on_request, on_complete), "cuptiActivityRegisterCallbacks");
}

CuptiTracer::~CuptiTracer() {
  if (impl_ && impl_->running) {
    try {
      stop();
    } catch (...) {
    }
  }
}

void CuptiTracer::start() {
  {
    std::lock_guard<std::mutex> lock(sink().m);
    sink().acts.clear();
    sink().open_ranges.clear();
    sink().dropped = 0;
  }
  for (auto k : kKinds) check(api().enable(k), "cuptiActivityEnable");
  impl_->running = true;
}

std::vector<Activity> CuptiTracer::stop() {
  check(api().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
  for (auto k : kKinds) api().disable(k);
  impl_->running = false;
  std::vector<Activity> out;
  {
    std::lock_guard<std::mutex> lock(sink().m);
    out.swap(sink().acts);
  }
  std::sort(out.begin(), out.end(), [](const Activity& a, const Activity& b) { return a.start_ns < b.start_ns; });
  return out;
}

std::uint64_t CuptiTracer::dropped() const {
  std::lock_guard<std::mutex> lock(sink().m);
  return sink().dropped;
}

const std::string& CuptiTracer::library() const { return api().path; }

}  // namespace aipe::profile
