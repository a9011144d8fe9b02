// Argument rules of the MoE routing and MXFP4 entry points (aipe/kernels/moe_checks.hpp) and the routing
// workspace size: host logic, tested on the CPU.
#include "aipe/kernels/moe_checks.hpp"

#include <stdexcept>
#include <string>

namespace aipe::kernels::moe {
namespace {

[[noreturn]] void bad(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string("kernels::moe::") + fn + ": " + what);
}
void need(const char* fn, const void* p, const char* name) {
  if (p == nullptr) bad(fn, std::string(name) + " is null");
}
std::string str(std::int64_t v) { return std::to_string(v); }

std::int64_t segments(int tokens, int k) { return (std::int64_t(tokens) * k + kRoutingSegment - 1) / kRoutingSegment; }

}  // namespace

void check_mxfp4(const Mxfp4Matrix& w, const void* out, const char* fn) {
  if (w.rows < 0) bad(fn, "rows must be >= 0, got " + str(w.rows));
  if (w.cols < 0 || w.cols % 32 != 0)
    bad(fn, "cols must be a non-negative multiple of 32 (the block size), got " + str(w.cols));
  if (w.rows == 0 || w.cols == 0) return;
  need(fn, w.blocks, "blocks");
  need(fn, w.scales, "scales");
  need(fn, out, "out");
}

void check_topk_softmax(const void* logits, std::int64_t ld, int tokens, int experts, int k, const int* ids,
                        const float* weights) {
  const char* fn = "topk_softmax";
  if (tokens < 0) bad(fn, "tokens must be >= 0, got " + str(tokens));
  if (experts < 1 || experts > kTopkMaxExperts)
    bad(fn, "experts must be in [1, " + str(kTopkMaxExperts) + "], got " + str(experts));
  if (k < 1 || k > experts || k > kTopkMaxK)
    bad(fn, "k must be in [1, min(experts, " + str(kTopkMaxK) + ")], got " + str(k) + " with experts " + str(experts));
  if (ld < experts) bad(fn, "ld " + str(ld) + " is below experts " + str(experts));
  if (tokens == 0) return;
  need(fn, logits, "logits");
  need(fn, ids, "ids");
  need(fn, weights, "weights");
}

std::size_t routing_workspace_bytes(int tokens, int k, int experts) {
  if (tokens < 0 || k < 1 || experts < 1) return 0;
  return std::size_t(segments(tokens, k)) * std::size_t(experts) * sizeof(int);
}

void check_build_routing(const int* ids, int tokens, int k, int experts, const Routing& out, const void* workspace,
                         std::size_t workspace_bytes) {
  const char* fn = "build_routing";
  if (tokens < 0) bad(fn, "tokens must be >= 0, got " + str(tokens));
  if (k < 1) bad(fn, "k must be >= 1, got " + str(k));
  if (std::int64_t(tokens) * k > kRoutingMaxPairs)
    bad(fn, "tokens * k = " + str(std::int64_t(tokens) * k) + " exceeds " + str(kRoutingMaxPairs));
  if (experts < 1 || experts > kRoutingMaxExperts)
    bad(fn, "experts must be in [1, " + str(kRoutingMaxExperts) + "], got " + str(experts));
  need(fn, out.offsets, "out.offsets");  // written even for tokens == 0 (all zero)
  const std::size_t need_bytes = routing_workspace_bytes(tokens, k, experts);
  if (workspace_bytes < need_bytes)
    bad(fn, "workspace_bytes " + std::to_string(workspace_bytes) + " is below routing_workspace_bytes() = " +
                std::to_string(need_bytes));
  if (tokens == 0) return;
  need(fn, ids, "ids");
  need(fn, out.row_token, "out.row_token");
  need(fn, out.pair_row, "out.pair_row");
  need(fn, workspace, "workspace");
  if (reinterpret_cast<std::uintptr_t>(workspace) % alignof(int) != 0) bad(fn, "workspace is not 4-byte aligned");
}

void check_gather_rows(const void* x, std::int64_t ld_x, const int* row_token, int rows, int cols, const void* xg,
                       std::int64_t ld_xg) {
  const char* fn = "gather_rows";
  if (rows < 0) bad(fn, "rows must be >= 0, got " + str(rows));
  if (cols < 1) bad(fn, "cols must be >= 1, got " + str(cols));
  if (ld_x < cols) bad(fn, "ld_x " + str(ld_x) + " is below cols " + str(cols));
  if (ld_xg < cols) bad(fn, "ld_xg " + str(ld_xg) + " is below cols " + str(cols));
  if (rows == 0) return;
  need(fn, x, "x");
  need(fn, row_token, "row_token");
  need(fn, xg, "xg");
  if (x == xg) bad(fn, "xg must not be x (rows are read after others are written)");
}

void check_combine(const void* yg, std::int64_t ld_yg, const int* pair_row, const float* weights, int tokens, int k,
                   int cols, const void* residual, const void* out, std::int64_t ld_out) {
  const char* fn = "combine";
  if (tokens < 0) bad(fn, "tokens must be >= 0, got " + str(tokens));
  if (k < 1) bad(fn, "k must be >= 1, got " + str(k));
  if (std::int64_t(tokens) * k > kRoutingMaxPairs)
    bad(fn, "tokens * k = " + str(std::int64_t(tokens) * k) + " exceeds " + str(kRoutingMaxPairs));
  if (cols < 1) bad(fn, "cols must be >= 1, got " + str(cols));
  if (ld_yg < cols) bad(fn, "ld_yg " + str(ld_yg) + " is below cols " + str(cols));
  if (ld_out < cols) bad(fn, "ld_out " + str(ld_out) + " is below cols " + str(cols));
  if (tokens == 0) return;
  need(fn, yg, "yg");
  need(fn, pair_row, "pair_row");
  need(fn, weights, "weights");
  need(fn, out, "out");
  if (out == yg) bad(fn, "out must not be yg (other tokens' grouped rows are read after out is written)");
  if (residual != nullptr && residual != out) {
    // A residual beside out is read where out is written: only out itself (the same element read, then written
    // by the same thread) or a separate buffer is safe.
    const auto* r = static_cast<const char*>(residual);
    const auto* o = static_cast<const char*>(out);
    const std::size_t bytes = (std::size_t(tokens - 1) * std::size_t(ld_out) + std::size_t(cols)) * sizeof(bf16);
    if (r < o + bytes && o < r + bytes) bad(fn, "residual overlaps out without being out");
  }
}

}  // namespace aipe::kernels::moe
