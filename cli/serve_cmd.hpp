// `aipe bench serve` lives beside `aipe serve` (cli/serve_cmd.cpp); `aipe bench` (cli/generate_cmd.cpp) adds it.
#pragma once
#include <functional>

#include "command.hpp"

namespace aipe::cli {

// Adds the `serve` subcommand to `bench`; set_action receives what to run when it is the one parsed.
void add_bench_serve(CLI::App* bench, std::function<void(Action)> set_action);

}  // namespace aipe::cli
