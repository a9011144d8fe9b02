#include "aipe/example.hpp"

#include <array>
#include <stdexcept>

#include "aipe/check.hpp"

namespace aipe {

const char* to_string(Timing t) {
  switch (t) {
    case Timing::standard: return "standard";
    case Timing::hot_l2: return "hot_l2";
    case Timing::host_clock_no_sync: return "host_clock_no_sync";
    case Timing::first_launch: return "first_launch";
  }
  return "?";
}

Axis Axis::choice(std::string name, std::vector<std::string> choices, const std::string& def, std::string help,
                  const std::string& quick, const std::string& small) {
  auto index_of = [&](const std::string& c) -> std::int64_t {
    for (std::size_t i = 0; i < choices.size(); ++i)
      if (choices[i] == c) return static_cast<std::int64_t>(i);
    throw std::logic_error("axis '" + name + "': preset '" + c + "' is not one of its choices");
  };
  Axis a;
  a.def = index_of(def);
  a.quick = quick.empty() ? a.def : index_of(quick);
  a.small = small.empty() ? a.def : index_of(small);
  a.min = 0;
  a.max = static_cast<std::int64_t>(choices.size()) - 1;
  a.name = std::move(name);
  a.help = std::move(help);
  a.choices = std::move(choices);
  return a;
}

std::string Axis::choice_list() const {
  std::string s;
  for (const auto& c : choices) s += (s.empty() ? "" : ", ") + c;
  return s;
}

std::int64_t Context::size(const std::string& axis) const {
  const auto it = sizes_.find(axis);
  if (it == sizes_.end()) {
    if (choices_.count(axis)) throw std::logic_error("axis '" + axis + "' is a choice axis: read it with choice()");
    throw std::logic_error("example asked for axis '" + axis + "' it did not declare");
  }
  return it->second;
}

const std::string& Context::choice(const std::string& axis) const {
  const auto it = choices_.find(axis);
  if (it == choices_.end()) {
    if (sizes_.count(axis)) throw std::logic_error("axis '" + axis + "' is an integer axis: read it with size()");
    throw std::logic_error("example asked for choice axis '" + axis + "' it did not declare");
  }
  return it->second;
}

void Context::output(void* ptr, std::size_t bytes, unsigned char byte) { outputs_.push_back({ptr, bytes, byte}); }

void Context::poison_outputs() const {
  for (const auto& o : outputs_) AIPE_CUDA(cudaMemsetAsync(o.ptr, o.byte, o.bytes, stream_));
}

bool is_library_variant(const std::string& name) {
  static constexpr std::array<const char*, 6> kLibs = {"memcpy", "cub", "cublas", "cublaslt", "cudnn", "nccl"};
  for (const char* l : kLibs)
    if (name == l) return true;
  return false;
}

}  // namespace aipe
