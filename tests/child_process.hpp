// Runs a function in a forked child with a deadline, for tests of code that must not hang or abort:
// a hang becomes a failed test instead of a stuck test run. Tests only (POSIX).
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

namespace aipe::test {

struct ChildResult {
  bool timed_out = false;
  bool signaled = false;  // killed by a signal other than our deadline (abort, segfault)
  int exit_code = -1;     // when it exited
};

inline ChildResult run_in_child(const std::function<int()>& f, double timeout_s) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 125;
    try {
      rc = f();
    } catch (...) {
      rc = 124;
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  ChildResult r;
  if (pid < 0) return r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.timed_out = true;
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else r.signaled = true;
  return r;
}

}  // namespace aipe::test
