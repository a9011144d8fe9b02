// Text from a file, made safe to print on a terminal: control characters (C0, DEL and the C1 range,
// which carry terminal escape sequences) are written as \xNN, a backslash as \\. Printable UTF-8 is kept.
#pragma once
#include <string>
#include <string_view>

namespace aipe {

std::string printable(std::string_view s);

}  // namespace aipe
