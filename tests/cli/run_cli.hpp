// Runs the CLI in-process with an argument list and captures its exit code, stdout and stderr: what the
// CLI tests assert on.
#pragma once
#include <sstream>
#include <string>
#include <vector>

#include "app.hpp"

namespace aipe::test {

struct CliOut {
  int code;
  std::string out, err;
};

inline CliOut run_cli(const std::vector<std::string>& args) {
  std::ostringstream o, e;
  const int c = aipe::cli::run(args, o, e);
  return {c, o.str(), e.str()};
}

}  // namespace aipe::test
