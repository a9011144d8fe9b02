// CLI subcommands register themselves, like examples: a new command is one new file in cli/.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
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

// The example selection that `profile` and `trace` share with `run`: they re-enter `aipe run` with
// these options, so patterns, variants and sizes are validated in one place.
struct Selection {
  std::vector<std::string> patterns, variants, sizes;
  bool quick = false, small = false, no_progress = false;
  std::uint64_t seed = 0x5eed;
  int device = 0;
};
void add_selection_options(CLI::App* c, Selection& s, const char* verb);
// Throws UsageError (exit 2, with the nearest ids) when a pattern matches no example: commands check
// this before looking for their tools, so a typo is reported as a typo.
void check_patterns(const std::vector<std::string>& patterns);
// `aipe run` arguments for a selection (the caller appends its own options).
std::vector<std::string> run_args(const Selection& s);

}  // namespace aipe::cli

#define AIPE_CLI_COMMAND(order, fn) \
  static const ::aipe::cli::CommandRegistrar AIPE_CLI_CONCAT(aipe_cli_cmd_, __LINE__)({order, fn})
#define AIPE_CLI_CONCAT_INNER(a, b) a##b
#define AIPE_CLI_CONCAT(a, b) AIPE_CLI_CONCAT_INNER(a, b)
