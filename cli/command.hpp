// CLI subcommands register themselves, like examples: a new command is one new file in cli/.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace aipe::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a command's setup returns: the action to run once parsing succeeded.
using Action = std::function<int(std::ostream& out, std::ostream& err)>;

struct CommandSpec {
  int order;  // position in --help
  // Adds the subcommand and its options to `app`; returns the subcommand and (through `action`) what to run.
  std::function<CLI::App*(CLI::App& app, Action& action)> add;
};

std::vector<CommandSpec>& commands();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandSpec spec) { commands().push_back(std::move(spec)); }
};

// The full command line, for reports.
const std::string& command_line();

}  // namespace aipe::cli

#define AIPE_CLI_COMMAND(order, fn) \
  static const ::aipe::cli::CommandRegistrar AIPE_CLI_CONCAT(aipe_cli_cmd_, __LINE__)({order, fn})
#define AIPE_CLI_CONCAT_INNER(a, b) a##b
#define AIPE_CLI_CONCAT(a, b) AIPE_CLI_CONCAT_INNER(a, b)
