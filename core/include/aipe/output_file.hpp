// The one way aipe writes a file. A command checks its output paths before any work that can fail
// (check_output_path), produces the content, then write_file puts it in place atomically: a temporary
// file in the same folder, every write and the close checked, then renamed over the target. A command
// that fails, or a disk that fills, never leaves a truncated file where a good one was.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace aipe {

// A write that failed (full disk, I/O error, permissions changed since the check): names the path
// and the system's reason.
struct WriteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws BadInput unless `path` can be a target: not empty, not a folder, its folder exists, and it is
// none of `inputs` (the same file under another name counts). Creates and changes nothing.
void check_output_path(const std::string& path, const std::vector<std::string>& inputs = {});

// Writes `content` to `path` through a temporary file and a rename; the target keeps its permissions.
// A target that exists and is not a regular file (/dev/stdout, /dev/full, a pipe) is written in place,
// each write checked. Throws WriteError; on failure the target is as it was and no temporary remains.
void write_file(const std::string& path, std::string_view content);

}  // namespace aipe
