#pragma once
// safetensors reader: the file is mmapped once, the JSON header is validated field by field, and each tensor is
// a view into the mapping. Every error is a std::runtime_error naming the file and the tensor or field.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace aipe::llm {

enum class DType { BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

// Size in bytes of one element; dtype names as the safetensors format spells them.
std::size_t dtype_size(DType d);
const char* dtype_name(DType d);
bool parse_dtype(const std::string& name, DType& out);

struct TensorView {
  DType dtype{};
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;  // into the mapping; valid while the owning file lives
  std::size_t bytes = 0;
};

// The header's limit: safetensors itself caps it at 100 MB; a larger one is a corrupt or hostile file.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

// Parses a header (the JSON text after the 8-byte length) against a data section of data_bytes. Pure function,
// so the fuzz target and tests reach it without a file. `where` names the file in errors.
struct ParsedTensor {
  DType dtype{};
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;
};
struct ParsedHeader {
  std::map<std::string, ParsedTensor> tensors;
  std::map<std::string, std::string> metadata;
};
ParsedHeader parse_header(const std::string& where, const char* json, std::size_t json_bytes,
                          std::uint64_t data_bytes);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const std::map<std::string, ParsedTensor>& tensors() const { return header_.tensors; }
  bool has(const std::string& name) const { return header_.tensors.count(name) != 0; }
  TensorView tensor(const std::string& name) const;  // throws naming file and tensor when absent
  // Byte offset of the data section in the file: a tensor's bytes start at data_start() + its begin offset.
  std::uint64_t data_start() const { return data_start_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  std::size_t data_start_ = 0;
  ParsedHeader header_;
};

// A checkpoint: one model.safetensors, or shards listed by model.safetensors.index.json (each opened once).
class Checkpoint {
 public:
  static Checkpoint open_dir(const std::string& dir);
  std::vector<std::string> names() const;
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  TensorView tensor(const std::string& name) const;
  const std::string& file_of(const std::string& name) const;
  const SafetensorsFile& file(const std::string& tensor) const;  // the shard holding it
  const std::string& dir() const { return dir_; }

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t> where_;  // tensor -> index into files_
  std::string dir_;
};

}  // namespace aipe::llm
