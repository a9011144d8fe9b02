// Parsing sizes from the command line: "4096", "64K", "16M", "1G" (binary multiples: K = 1024).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace aipe {

// Empty on malformed input or overflow; `error` says what is wrong.
std::optional<std::int64_t> parse_size(const std::string& text, std::string* error = nullptr);

// "name=value" into its two parts; empty on malformed input.
std::optional<std::pair<std::string, std::int64_t>> parse_size_assignment(const std::string& text,
                                                                          std::string* error = nullptr);

}  // namespace aipe
