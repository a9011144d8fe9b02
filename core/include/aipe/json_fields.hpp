// Reading the fields of results and peak files: every value is checked against its type and range
// before use (a float like 1e99 cast to an int is undefined behaviour), and a bad one is reported as
// "WHERE.KEY: what is wrong" (the caller adds the file name). Throws std::runtime_error.
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace aipe::fields {

// An integral number (4096 or 4096.0) in [lo, hi]. Absent or null: `def`, or an error without one.
std::int64_t integer(const nlohmann::json& obj, const std::string& key, const std::string& where, std::int64_t lo,
                     std::int64_t hi, std::optional<std::int64_t> def = std::nullopt);
std::uint64_t unsigned_integer(const nlohmann::json& obj, const std::string& key, const std::string& where,
                               std::uint64_t hi = std::numeric_limits<std::uint64_t>::max(),
                               std::optional<std::uint64_t> def = std::nullopt);
// A finite number in [lo, hi]; absent or null reads as `def` (JSON has no NaN: writers store null).
double number(const nlohmann::json& obj, const std::string& key, const std::string& where, double def = 0,
              double lo = std::numeric_limits<double>::lowest(), double hi = std::numeric_limits<double>::max());
// A value that is itself a number, at `where` (a map's element).
double number_value(const nlohmann::json& v, const std::string& where);
std::int64_t integer_value(const nlohmann::json& v, const std::string& where, std::int64_t lo, std::int64_t hi);
std::string string(const nlohmann::json& obj, const std::string& key, const std::string& where,
                   std::optional<std::string> def = std::nullopt);
bool boolean(const nlohmann::json& obj, const std::string& key, const std::string& where, std::optional<bool> def = std::nullopt);
// The object at obj[key]; an error when absent or not an object.
const nlohmann::json& object(const nlohmann::json& obj, const std::string& key, const std::string& where);

// "where.key", or "key" at the top level.
std::string field_name(const std::string& where, const std::string& key);

}  // namespace aipe::fields
