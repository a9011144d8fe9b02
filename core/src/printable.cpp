#include "aipe/printable.hpp"

#include <cstdio>

namespace aipe {

std::string printable(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  auto hex = [&o](unsigned char c) {
    char b[8];
    std::snprintf(b, sizeof b, "\\x%02x", c);
    o += b;
  };
  auto cont = [&s](std::size_t i) { return i < s.size() && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80; };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      hex(c);
      ++i;
    } else if (c == '\\') {
      o += "\\\\";
      ++i;
    } else if (c < 0x80) {
      o += static_cast<char>(c);
      ++i;
    } else {
      // A UTF-8 sequence is kept whole when well formed and not a C1 control (U+0080..U+009F, which some
      // terminals take as escape sequences); any other byte >= 0x80 is escaped on its own.
      const std::size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
      bool ok = n > 0;
      for (std::size_t k = 1; ok && k < n; ++k) ok = cont(i + k);
      if (ok && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) <= 0x9f) ok = false;
      if (ok) {
        o.append(s.substr(i, n));
        i += n;
      } else {
        hex(c);
        ++i;
      }
    }
  }
  return o;
}

}  // namespace aipe
