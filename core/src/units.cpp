#include "aipe/units.hpp"

#include <cctype>
#include <limits>

namespace aipe {

std::optional<std::int64_t> parse_size(const std::string& text, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<std::int64_t> {
    if (error) *error = why;
    return std::nullopt;
  };
  if (text.empty()) return fail("empty size");
  std::size_t i = 0;
  std::int64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const int d = text[i] - '0';
    if (v > (std::numeric_limits<std::int64_t>::max() - d) / 10) return fail("'" + text + "' is too large");
    v = v * 10 + d;
    ++i;
  }
  if (i == 0) return fail("'" + text + "' is not a size: expected digits with an optional K, M or G suffix");
  std::int64_t mult = 1;
  if (i < text.size()) {
    switch (text[i]) {
      case 'k': case 'K': mult = std::int64_t{1} << 10; break;
      case 'm': case 'M': mult = std::int64_t{1} << 20; break;
      case 'g': case 'G': mult = std::int64_t{1} << 30; break;
      default: return fail("'" + text + "' has an unknown suffix '" + text.substr(i) + "' (use K, M or G)");
    }
    ++i;
    if (i != text.size()) return fail("'" + text + "' has trailing characters after the suffix");
  }
  if (v > std::numeric_limits<std::int64_t>::max() / mult) return fail("'" + text + "' is too large");
  return v * mult;
}

std::optional<std::pair<std::string, std::int64_t>> parse_size_assignment(const std::string& text, std::string* error) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    if (error) *error = "'" + text + "' is not NAME=VALUE";
    return std::nullopt;
  }
  auto v = parse_size(text.substr(eq + 1), error);
  if (!v) return std::nullopt;
  return std::make_pair(text.substr(0, eq), *v);
}

}  // namespace aipe
