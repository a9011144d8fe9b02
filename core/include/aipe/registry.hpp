// The list of examples. Each example's .cu registers itself with one macro; nothing else changes
// when an example is added.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aipe/example.hpp"

namespace aipe {

struct RegistryEntry {
  ExampleInfo info;
  std::vector<std::string> variant_names;
  std::vector<std::string> variant_summaries;
  std::string source_file;
  std::function<std::unique_ptr<Example>()> make;
};

class Registry {
 public:
  static Registry& instance();
  // Throws std::logic_error on a malformed or duplicate id, or duplicate variant names.
  void add(std::function<std::unique_ptr<Example>()> make, const char* source_file);
  const std::vector<RegistryEntry>& entries() const { return entries_; }  // sorted by id
  const RegistryEntry* find(const std::string& id) const;
  // Drops an entry; false if there is none. For tests that register a temporary example.
  bool remove(const std::string& id);

  // Pattern: an exact id, a prefix ending at a '/' boundary or a chapter ("ch07", "ch07/"),
  // or a glob with '*' and '?'. Returns the entries that match, in id order.
  std::vector<const RegistryEntry*> match(const std::string& pattern) const;
  // Ids (and chapters) closest to a pattern that matched nothing, best first.
  std::vector<std::string> suggest(const std::string& pattern, std::size_t max = 3) const;

 private:
  std::vector<RegistryEntry> entries_;
};

bool valid_example_id(const std::string& id);
// Whether an example id matches a pattern as Registry::match reads it: an exact id, "all" or "", a
// prefix ending at a '/' boundary ("ch07", "ch07/"), or a glob with '*' and '?'.
bool id_matches(const std::string& pattern, const std::string& id);
bool glob_match(const std::string& pattern, const std::string& text);
std::size_t edit_distance(const std::string& a, const std::string& b);
// The names nearest to `word` by edit distance (ties by name), at most `max` of them and none farther
// than `max_distance`: what a "did you mean" message lists.
std::vector<std::string> nearest(const std::string& word, const std::vector<std::string>& names, std::size_t max,
                                 std::size_t max_distance = static_cast<std::size_t>(-1));

namespace detail {
struct Registrar {
  Registrar(std::function<std::unique_ptr<Example>()> make, const char* file) {
    Registry::instance().add(std::move(make), file);
  }
};
}  // namespace detail

}  // namespace aipe

#define AIPE_CONCAT_INNER(a, b) a##b
#define AIPE_CONCAT(a, b) AIPE_CONCAT_INNER(a, b)
// Registers an Example subclass (default-constructible, touching no GPU in its constructor).
#define AIPE_REGISTER_EXAMPLE(Type)                                                  \
  static const ::aipe::detail::Registrar AIPE_CONCAT(aipe_registrar_, __LINE__)(    \
      [] { return std::unique_ptr<::aipe::Example>(new Type()); }, __FILE__)
