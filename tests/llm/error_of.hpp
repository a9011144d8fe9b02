// The message of the std::invalid_argument that f throws; a test failure (and a message no check can match)
// when it throws none. Shared by the llm/ host tests, which check that each bad input names its problem.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>

namespace aipe::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no std::invalid_argument thrown";
  return "(no std::invalid_argument thrown)";
}

}  // namespace aipe::test
