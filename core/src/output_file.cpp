#include "aipe/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "aipe/check.hpp"

namespace aipe {

namespace fs = std::filesystem;

namespace {

std::string quoted(const std::string& p) { return "'" + p + "'"; }

[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw WriteError("cannot write " + quoted(path) + ": " + what + ": " + std::strerror(err));
}

// write(2) until everything is out; false (errno set) on the first error.
bool write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

fs::path folder_of(const fs::path& p) { return p.has_parent_path() ? p.parent_path() : fs::path("."); }

}  // namespace

void check_output_path(const std::string& path, const std::vector<std::string>& inputs) {
  if (path.empty()) throw BadInput("cannot write '': empty file name");
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) throw BadInput("cannot write " + quoted(path) + ": it is a folder");
  const fs::path dir = folder_of(p);
  if (!fs::is_directory(dir, ec))
    throw BadInput("cannot write " + quoted(path) + ": folder " + quoted(dir.string()) + " does not exist");
  if (::access(dir.c_str(), W_OK) != 0 && !fs::exists(p, ec))
    throw BadInput("cannot write " + quoted(path) + ": folder " + quoted(dir.string()) + " is not writable");
  for (const auto& in : inputs) {
    std::error_code e1;
    if (in == path || fs::equivalent(in, p, e1))
      throw BadInput("cannot write " + quoted(path) + ": it is also an input (" + quoted(in) + "); choose another output file");
  }
}

void write_file(const std::string& path, std::string_view content) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);  // follows a symlink: its target is what gets replaced
  if (fs::is_directory(st)) throw WriteError("cannot write " + quoted(path) + ": it is a folder");
  if (fs::exists(st) && !fs::is_regular_file(st)) {
    // A device or a pipe: renaming over it would replace it, so write in place.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail(path, "open", errno);
    const bool ok = write_all(fd, content);
    const int werr = errno;
    if (::close(fd) != 0 && ok) fail(path, "close", errno);
    if (!ok) fail(path, "write", werr);
    return;
  }
  fs::path target(path);
  if (fs::is_symlink(fs::symlink_status(target, ec))) {
    // canonical() fails on a link whose target does not exist yet (and would leave an empty path):
    // then the link's own target, read relative to the link's folder, is the file to create.
    if (fs::path real = fs::canonical(target, ec); !ec) {
      target = real;
    } else {
      const fs::path to = fs::read_symlink(target, ec);
      if (ec) fail(path, "reading the symbolic link", ec.value());
      target = to.is_absolute() ? to : folder_of(target) / to;
    }
  }
  const fs::path dir = folder_of(target);
  std::string tmpl = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) fail(path, "creating a temporary file in its folder", errno);
  auto abandon = [&](const char* what, int err) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    fail(path, what, err);
  };
  // mkstemp makes the file 0600: give it the target's permissions, or what a new file would get.
  mode_t mode;
  if (fs::exists(st)) {
    mode = static_cast<mode_t>(st.permissions()) & 07777;
  } else {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    mode = 0666 & ~mask;
  }
  if (::fchmod(fd, mode) != 0) abandon("setting permissions", errno);
  if (!write_all(fd, content)) abandon("write", errno);
  if (::fsync(fd) != 0) abandon("flush to disk", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    fail(path, "close", err);
  }
  if (::rename(tmpl.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    fail(path, "rename", err);
  }
}

}  // namespace aipe
