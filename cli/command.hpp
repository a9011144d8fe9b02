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
// Throws UsageError (exit 2, with the nearest names) when a pattern matches no example, a variant or
// a size is unknown or out of range: commands check this before looking for a GPU or their tools, so a
// typo is reported as a typo.
void check_selection(const Selection& s);

// Output files: checked when the command starts (nothing is opened: throws BadInput, exit 2, for a
// path that cannot be a target or is one of `inputs`), written when its content is complete (atomic,
// see aipe/output_file.hpp; throws WriteError, exit 1). "" is no output; "-" is `out`.
void check_output(const std::string& path, const std::vector<std::string>& inputs = {});
void emit(const std::string& path, const std::string& content, std::ostream& out);

// Option checks with plain messages: a finite number >= 0 (NaN, inf and "abc" are errors, each named
// as what it is), and a decimal integer in [0, max] (no sign, no wrap-around past 2^64 - 1).
CLI::Validator non_negative_number();
CLI::Validator non_negative_integer(std::uint64_t max = UINT64_MAX);
constexpr std::uint64_t kMaxDevice = 1023;
// `aipe run` arguments for a selection (the caller appends its own options).
std::vector<std::string> run_args(const Selection& s);

}  // namespace aipe::cli

#define AIPE_CLI_COMMAND(order, fn) \
  static const ::aipe::cli::CommandRegistrar AIPE_CLI_CONCAT(aipe_cli_cmd_, __LINE__)({order, fn})
#define AIPE_CLI_CONCAT_INNER(a, b) a##b
#define AIPE_CLI_CONCAT(a, b) AIPE_CLI_CONCAT_INNER(a, b)
