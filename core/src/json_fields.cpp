#include "aipe/json_fields.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "aipe/printable.hpp"

namespace aipe::fields {

using nlohmann::json;

std::string field_name(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "." + key;
}

namespace {

[[noreturn]] void bad(const std::string& name, const std::string& why) {
  throw std::runtime_error(printable(name) + ": " + why);
}

// The value shown in a message: short, and free of control characters.
std::string shown(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return printable(s);
}

const json* find(const json& obj, const std::string& key, const std::string& where) {
  if (!obj.is_object()) bad(where.empty() ? "(top level)" : where, "expected an object, found " + shown(obj));
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string range_text(long double lo, long double hi) {
  char b[96];
  std::snprintf(b, sizeof b, "[%.0Lf, %.0Lf]", lo, hi);
  return b;
}

// An integral value within [lo, hi] (both representable as long double exactly: 64-bit mantissa).
long double integral(const json& v, const std::string& name, long double lo, long double hi) {
  long double x;
  if (v.is_number_unsigned()) x = static_cast<long double>(v.get<std::uint64_t>());
  else if (v.is_number_integer()) x = static_cast<long double>(v.get<std::int64_t>());
  else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) bad(name, shown(v) + " is not an integer");
    x = d;
  } else {
    bad(name, "expected an integer, found " + shown(v));
  }
  if (x < lo || x > hi) bad(name, shown(v) + " is out of range " + range_text(lo, hi));
  return x;
}

}  // namespace

std::int64_t integer_value(const json& v, const std::string& where, std::int64_t lo, std::int64_t hi) {
  return static_cast<std::int64_t>(integral(v, where, lo, hi));
}

std::int64_t integer(const json& obj, const std::string& key, const std::string& where, std::int64_t lo, std::int64_t hi,
                     std::optional<std::int64_t> def) {
  const json* v = find(obj, key, where);
  if (!v) {
    if (def) return *def;
    bad(field_name(where, key), "missing");
  }
  return integer_value(*v, field_name(where, key), lo, hi);
}

std::uint64_t unsigned_integer(const json& obj, const std::string& key, const std::string& where, std::uint64_t hi,
                               std::optional<std::uint64_t> def) {
  const json* v = find(obj, key, where);
  if (!v) {
    if (def) return *def;
    bad(field_name(where, key), "missing");
  }
  return static_cast<std::uint64_t>(integral(*v, field_name(where, key), 0, static_cast<long double>(hi)));
}

double number_value(const json& v, const std::string& name) {
  if (!v.is_number()) bad(name, "expected a number, found " + shown(v));
  const double d = v.get<double>();
  if (!std::isfinite(d)) bad(name, "not a finite number");
  return d;
}

double number(const json& obj, const std::string& key, const std::string& where, double def, double lo, double hi) {
  const json* v = find(obj, key, where);
  if (!v) return def;
  const double d = number_value(*v, field_name(where, key));
  if (d < lo || d > hi) {
    char b[96];
    std::snprintf(b, sizeof b, " is out of range [%g, %g]", lo, hi);
    bad(field_name(where, key), shown(*v) + b);
  }
  return d;
}

std::string string(const json& obj, const std::string& key, const std::string& where, std::optional<std::string> def) {
  const json* v = find(obj, key, where);
  if (!v) {
    if (def) return *def;
    bad(field_name(where, key), "missing");
  }
  if (!v->is_string()) bad(field_name(where, key), "expected a string, found " + shown(*v));
  return v->get<std::string>();
}

bool boolean(const json& obj, const std::string& key, const std::string& where, std::optional<bool> def) {
  const json* v = find(obj, key, where);
  if (!v) {
    if (def) return *def;
    bad(field_name(where, key), "missing");
  }
  if (!v->is_boolean()) bad(field_name(where, key), "expected true or false, found " + shown(*v));
  return v->get<bool>();
}

const json& object(const json& obj, const std::string& key, const std::string& where) {
  const json* v = find(obj, key, where);
  if (!v) bad(field_name(where, key), "missing");
  if (!v->is_object()) bad(field_name(where, key), "expected an object, found " + shown(*v));
  return *v;
}

}  // namespace aipe::fields
