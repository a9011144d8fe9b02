#include "aipe/llm/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace aipe::llm {
namespace {

struct DTypeInfo {
  DType d;
  const char* name;
  std::size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},       {DType::I8, "I8", 1},
    {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1}, {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},   {DType::F16, "F16", 2},     {DType::BF16, "BF16", 2},
    {DType::I32, "I32", 4},   {DType::U32, "U32", 4},     {DType::F32, "F32", 4},
    {DType::I64, "I64", 8},   {DType::U64, "U64", 8},     {DType::F64, "F64", 8},
};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::runtime_error(where + ": " + what);
}

std::string base(const std::string& p) { return std::filesystem::path(p).filename().string(); }

}  // namespace

std::size_t dtype_size(DType d) {
  for (const auto& i : kDTypes)
    if (i.d == d) return i.size;
  return 0;
}
const char* dtype_name(DType d) {
  for (const auto& i : kDTypes)
    if (i.d == d) return i.name;
  return "?";
}
bool parse_dtype(const std::string& name, DType& out) {
  for (const auto& i : kDTypes)
    if (name == i.name) {
      out = i.d;
      return true;
    }
  return false;
}

ParsedHeader parse_header(const std::string& where, const char* json, std::size_t json_bytes,
                          std::uint64_t data_bytes) {
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(json, json + json_bytes);
  } catch (const nlohmann::json::exception& e) {
    fail(where, std::string("header is not valid JSON: ") + e.what());
  }
  if (!h.is_object()) fail(where, "header is not a JSON object");
  ParsedHeader out;
  for (const auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(where, "__metadata__ is not an object");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string()) fail(where, "__metadata__ '" + k + "' is not a string");
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string t = "tensor '" + name + "': ";
    if (!v.is_object()) fail(where, t + "entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(where, t + "dtype missing or not a string");
    ParsedTensor pt;
    if (!parse_dtype(v["dtype"].get<std::string>(), pt.dtype))
      fail(where, t + "unknown dtype '" + v["dtype"].get<std::string>() + "'");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(where, t + "shape missing or not an array");
    // Element count with overflow checks: a hostile shape must not wrap into a small size.
    std::uint64_t elems = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail(where, t + "shape has a dimension that is not a non-negative integer");
      const std::uint64_t n = d.get<std::uint64_t>();
      if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        fail(where, t + "shape dimension too large");
      if (n != 0 && elems > std::numeric_limits<std::uint64_t>::max() / n) fail(where, t + "shape size overflows");
      elems *= n;
      pt.shape.push_back(static_cast<std::int64_t>(n));
    }
    const std::uint64_t es = dtype_size(pt.dtype);
    if (elems > std::numeric_limits<std::uint64_t>::max() / es) fail(where, t + "byte size overflows");
    const std::uint64_t want = elems * es;
    const auto& o = v.contains("data_offsets") ? v["data_offsets"] : nlohmann::json();
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned())
      fail(where, t + "data_offsets missing or not two non-negative integers");
    pt.begin = o[0].get<std::uint64_t>();
    pt.end = o[1].get<std::uint64_t>();
    const std::string offs = "data_offsets [" + std::to_string(pt.begin) + ", " + std::to_string(pt.end) + "]";
    if (pt.begin > pt.end) fail(where, t + offs + " begin > end");
    if (pt.end > data_bytes)
      fail(where, t + offs + " exceed the data section (" + std::to_string(data_bytes) + " bytes)");
    if (pt.end - pt.begin != want)
      fail(where, t + offs + " hold " + std::to_string(pt.end - pt.begin) + " bytes but shape and dtype need " +
                      std::to_string(want));
    out.tensors.emplace(name, std::move(pt));
  }
  // No two tensors may share bytes (empty tensors occupy none).
  std::vector<std::pair<const std::string*, const ParsedTensor*>> by;
  for (const auto& [n, p] : out.tensors)
    if (p.end > p.begin) by.emplace_back(&n, &p);
  std::sort(by.begin(), by.end(), [](auto& a, auto& b) { return a.second->begin < b.second->begin; });
  for (std::size_t i = 1; i < by.size(); ++i)
    if (by[i].second->begin < by[i - 1].second->end)
      fail(where, "tensor '" + *by[i].first + "' overlaps tensor '" + *by[i - 1].first + "'");
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const std::string w = base(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, "cannot stat");
  }
  const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(w, "truncated: " + std::to_string(size) + " bytes, less than the 8-byte header length");
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (m == MAP_FAILED) fail(w, std::string("mmap failed: ") + std::strerror(errno));
  map_ = m;
  map_bytes_ = size;
  try {
    const auto* b = static_cast<const unsigned char*>(map_);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];  // little-endian regardless of the host
    if (n > kMaxHeaderBytes) fail(w, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
    if (n > size - 8)
      fail(w, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) +
                  " bytes)");
    data_start_ = 8 + n;
    header_ = parse_header(w, reinterpret_cast<const char*>(b + 8), n, size - data_start_);
  } catch (...) {
    ::munmap(map_, map_bytes_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_bytes_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)), map_(o.map_), map_bytes_(o.map_bytes_), data_start_(o.data_start_),
      header_(std::move(o.header_)) {
  o.map_ = nullptr;
  o.map_bytes_ = 0;
}

TensorView SafetensorsFile::tensor(const std::string& name) const {
  const auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) fail(base(path_), "no tensor '" + name + "'");
  const auto& p = it->second;
  return TensorView{p.dtype, p.shape, static_cast<const std::byte*>(map_) + data_start_ + p.begin,
                    static_cast<std::size_t>(p.end - p.begin)};
}

Checkpoint Checkpoint::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  Checkpoint c;
  c.dir_ = dir;
  const fs::path idx = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (!fs::exists(idx)) {
    if (!fs::exists(single)) fail(dir, "neither model.safetensors nor model.safetensors.index.json exists");
    c.files_.emplace_back(single.string());
    for (const auto& [n, p] : c.files_[0].tensors()) c.where_[n] = 0;
    return c;
  }
  const std::string iw = "model.safetensors.index.json";
  nlohmann::json j;
  {
    std::ifstream in(idx);
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(iw, std::string("not valid JSON: ") + e.what());
    }
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(iw, "weight_map missing or not an object");
  std::map<std::string, std::size_t> shard;  // file name -> index, so each shard opens once
  for (const auto& [t, f] : j["weight_map"].items()) {
    if (!f.is_string()) fail(iw, "weight_map '" + t + "' is not a string");
    const std::string fn = f.get<std::string>();
    if (fn.empty() || fn.find('/') != std::string::npos || fn == "..")
      fail(iw, "weight_map '" + t + "' names '" + fn + "', not a file in the checkpoint folder");
    auto it = shard.find(fn);
    if (it == shard.end()) {
      const fs::path p = fs::path(dir) / fn;
      if (!fs::exists(p)) fail(iw, "weight_map '" + t + "' names a missing file '" + fn + "'");
      c.files_.emplace_back(p.string());
      it = shard.emplace(fn, c.files_.size() - 1).first;
    }
    if (!c.files_[it->second].has(t)) fail(fn, "tensor '" + t + "' is in the weight_map but not in this shard");
    c.where_[t] = it->second;
  }
  // A tensor stored in two shards, or present but unlisted, is ambiguous: refuse rather than pick one.
  std::set<std::string> seen;
  for (const auto& f : c.files_)
    for (const auto& [n, p] : f.tensors()) {
      if (!seen.insert(n).second) fail(base(f.path()), "tensor '" + n + "' is also stored in another shard");
      if (!c.where_.count(n)) fail(base(f.path()), "tensor '" + n + "' is not listed in the weight_map");
      if (c.files_[c.where_.at(n)].path() != f.path())
        fail(base(f.path()), "tensor '" + n + "' is mapped to another shard");
    }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> v;
  for (const auto& [n, i] : where_) v.push_back(n);
  return v;
}
const std::string& Checkpoint::file_of(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) fail(dir_, "no tensor '" + name + "' in the checkpoint");
  return files_[it->second].path();
}
const SafetensorsFile& Checkpoint::file(const std::string& tensor) const {
  const auto it = where_.find(tensor);
  if (it == where_.end()) fail(dir_, "no tensor '" + tensor + "' in the checkpoint");
  return files_[it->second];
}
TensorView Checkpoint::tensor(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) fail(dir_, "no tensor '" + name + "' in the checkpoint");
  return files_[it->second].tensor(name);
}

}  // namespace aipe::llm
