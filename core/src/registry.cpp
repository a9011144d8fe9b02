#include "aipe/registry.hpp"

#include <algorithm>
#include <regex>
#include <set>
#include <stdexcept>

namespace aipe {

Registry& Registry::instance() {
  static Registry r;
  return r;
}

bool valid_example_id(const std::string& id) {
  static const std::regex re("ch[0-9]{2}/[a-z0-9_]+");
  return std::regex_match(id, re);
}

void Registry::add(std::function<std::unique_ptr<Example>()> make, const char* source_file) {
  std::unique_ptr<Example> ex = make();
  RegistryEntry e;
  e.info = ex->info();
  e.source_file = source_file ? source_file : "";
  if (!valid_example_id(e.info.id))
    throw std::logic_error("example id '" + e.info.id + "' (" + e.source_file + ") is not chNN/lower_snake_case");
  if (find(e.info.id)) throw std::logic_error("example id '" + e.info.id + "' registered twice");
  std::set<std::string> seen;
  for (const Variant& v : ex->variants()) {
    if (v.name.empty() || !seen.insert(v.name).second)
      throw std::logic_error("example '" + e.info.id + "' has an empty or duplicate variant name '" + v.name + "'");
    e.variant_names.push_back(v.name);
    e.variant_summaries.push_back(v.summary);
  }
  if (e.variant_names.empty()) throw std::logic_error("example '" + e.info.id + "' has no variants");
  std::set<std::string> axes;
  for (const Axis& a : e.info.axes) {
    if (!axes.insert(a.name).second) throw std::logic_error("example '" + e.info.id + "' repeats axis " + a.name);
    if (!a.is_choice()) continue;
    std::set<std::string> choices;
    for (const auto& c : a.choices)
      if (c.empty() || c.find_first_of("=, ") != std::string::npos || !choices.insert(c).second)
        throw std::logic_error("example '" + e.info.id + "' axis " + a.name + ": empty, malformed or repeated choice '" +
                               c + "'");
    const auto n = static_cast<std::int64_t>(a.choices.size());
    for (const std::int64_t p : {a.def, a.quick, a.small})
      if (p < 0 || p >= n)
        throw std::logic_error("example '" + e.info.id + "' axis " + a.name + ": a preset is not one of its choices");
  }
  e.make = std::move(make);
  const auto pos = std::lower_bound(entries_.begin(), entries_.end(), e.info.id,
                                    [](const RegistryEntry& x, const std::string& id) { return x.info.id < id; });
  entries_.insert(pos, std::move(e));
}

const RegistryEntry* Registry::find(const std::string& id) const {
  for (const auto& e : entries_)
    if (e.info.id == id) return &e;
  return nullptr;
}

bool Registry::remove(const std::string& id) {
  return std::erase_if(entries_, [&](const RegistryEntry& e) { return e.info.id == id; }) > 0;
}

bool glob_match(const std::string& p, const std::string& t) {
  // Iterative matcher with backtracking to the last '*'.
  std::size_t i = 0, j = 0, star = std::string::npos, mark = 0;
  while (j < t.size()) {
    if (i < p.size() && (p[i] == '?' || p[i] == t[j])) {
      ++i;
      ++j;
    } else if (i < p.size() && p[i] == '*') {
      star = i++;
      mark = j;
    } else if (star != std::string::npos) {
      i = star + 1;
      j = ++mark;
    } else {
      return false;
    }
  }
  while (i < p.size() && p[i] == '*') ++i;
  return i == p.size();
}

bool id_matches(const std::string& pattern, const std::string& id) {
  if (pattern.find_first_of("*?") != std::string::npos) return glob_match(pattern, id);
  if (pattern.empty() || pattern == "all") return true;
  // Exact id, or a prefix that ends at a '/' boundary ("ch07", "ch07/").
  return id == pattern || (id.size() > pattern.size() && id.compare(0, pattern.size(), pattern) == 0 &&
                           (pattern.back() == '/' || id[pattern.size()] == '/'));
}

std::vector<const RegistryEntry*> Registry::match(const std::string& pattern) const {
  std::vector<const RegistryEntry*> out;
  for (const auto& e : entries_)
    if (id_matches(pattern, e.info.id)) out.push_back(&e);
  return out;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> nearest(const std::string& word, const std::vector<std::string>& names, std::size_t max,
                                 std::size_t max_distance) {
  std::vector<std::pair<std::size_t, std::string>> by_distance;
  for (const auto& n : names) by_distance.emplace_back(edit_distance(word, n), n);
  std::sort(by_distance.begin(), by_distance.end());
  std::vector<std::string> out;
  for (const auto& [d, n] : by_distance) {
    if (out.size() >= max || d > max_distance) break;
    out.push_back(n);
  }
  return out;
}

std::vector<std::string> Registry::suggest(const std::string& pattern, std::size_t max) const {
  std::vector<std::pair<std::size_t, std::string>> cands;
  std::set<std::string> names;
  for (const auto& e : entries_) {
    names.insert(e.info.id);
    names.insert(e.info.id.substr(0, e.info.id.find('/')));
    names.insert(e.info.id.substr(e.info.id.find('/') + 1));
  }
  for (const auto& n : names) {
    std::size_t d = edit_distance(pattern, n);
    // A pattern that is a substring of an id is a strong hint ("copy" -> "ch07/vectorized_copy").
    if (n.find(pattern) != std::string::npos) d = std::min<std::size_t>(d, 1);
    cands.emplace_back(d, n);
  }
  std::sort(cands.begin(), cands.end());
  std::vector<std::string> out;
  for (const auto& [d, n] : cands) {
    if (out.size() >= max) break;
    if (d > std::max<std::size_t>(3, pattern.size() / 2)) break;
    // Suggest full ids only: map bare names back to their id.
    std::string full = n;
    if (n.find('/') == std::string::npos && n.rfind("ch", 0) != 0) {
      for (const auto& e : entries_)
        if (e.info.id.substr(e.info.id.find('/') + 1) == n) full = e.info.id;
    }
    if (std::find(out.begin(), out.end(), full) == out.end()) out.push_back(full);
  }
  return out;
}

}  // namespace aipe
