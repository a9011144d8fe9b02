#pragma once
// A stand-in for the model step that exercises the KV cache the way attention does, so that scheduler and
// block-manager tests see wrong paging as wrong output. The "K/V" of position i of a sequence is
//   kv[i] = mix(kv[i-1], token[i], i),  kv[-1] = kSeed,
// so it depends on the whole prefix. A step reads kv[begin-1] through the block table (as attention reads past
// tokens), writes kv[begin..end) into the step's slots, and samples token = f(kv[end-1]). The sampled ids are then
// a pure function of the token sequence: any page shared wrongly, reused while held, or mapped to the wrong slot
// changes them. check_prefix() compares every computed position of a sequence against the direct chain.
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/llm/scheduler.hpp"

namespace aipe::test {

class FakeKvModel {
 public:
  static constexpr std::uint64_t kSeed = 0x243f6a8885a308d3ull;
  static constexpr std::uint64_t kPoison = ~0ull;  // never a mix() result in practice; marks unwritten slots

  FakeKvModel(std::int32_t num_pages, std::int32_t page_size, std::int32_t vocab)
      : p_(page_size), vocab_(vocab), kv_(std::size_t(num_pages) * std::size_t(page_size), kPoison) {}

  static std::uint64_t mix(std::uint64_t prev, llm::TokenId t, std::int32_t pos) {
    std::uint64_t x = prev ^ (std::uint64_t(std::uint32_t(t)) * 0x9e3779b97f4a7c15ull) ^ (std::uint64_t(pos) << 40);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return x;
  }
  llm::TokenId sample_of(std::uint64_t kv) const { return static_cast<llm::TokenId>((kv >> 17) % std::uint64_t(vocab_)); }

  // The tokens a request produces when nothing goes wrong: the reference for every scheduling.
  std::vector<llm::TokenId> reference_output(const std::vector<llm::TokenId>& prompt, std::size_t n_out) const {
    std::uint64_t kv = kSeed;
    std::vector<llm::TokenId> seq = prompt;
    std::vector<llm::TokenId> out;
    for (std::size_t i = 0; out.size() < n_out; ++i) {
      kv = mix(kv, seq[i], static_cast<std::int32_t>(i));
      if (i + 1 == seq.size()) {
        out.push_back(sample_of(kv));
        seq.push_back(out.back());
      }
    }
    return out;
  }

  // Runs one step; throws std::logic_error on a slot that disagrees with the block table or a read of a slot
  // never written. Returns the sampled ids in plan order.
  std::vector<llm::TokenId> run(const llm::StepPlan& plan) {
    std::vector<llm::TokenId> sampled;
    for (const auto& q : plan.seqs) {
      if (q.tokens.size() != std::size_t(q.end - q.begin) || q.slots.size() != q.tokens.size() ||
          q.positions.size() != q.tokens.size())
        fail(q, "token, position and slot counts differ from end - begin");
      if (q.block_table.size() != std::size_t((q.end + p_ - 1) / p_)) fail(q, "block table does not cover [0, end)");
      std::uint64_t kv = kSeed;
      if (q.begin > 0) {
        kv = kv_[slot_of(q, q.begin - 1)];
        if (kv == kPoison) fail(q, "reads position " + std::to_string(q.begin - 1) + " which was never written");
      }
      for (std::size_t i = 0; i < q.tokens.size(); ++i) {
        const std::int32_t pos = q.begin + static_cast<std::int32_t>(i);
        if (q.positions[i] != pos) fail(q, "position " + std::to_string(i) + " is " + std::to_string(q.positions[i]));
        if (std::size_t(q.slots[i]) != slot_of(q, pos)) fail(q, "slot of position " + std::to_string(pos) + " is not row[pos/P]*P+pos%P");
        kv = mix(kv, q.tokens[i], pos);
        kv_[std::size_t(q.slots[i])] = kv;
      }
      if (q.sample) sampled.push_back(sample_of(kv));
    }
    return sampled;
  }

  // Every position in [0, n) of a held sequence, read through its block table, equals the direct chain.
  void check_prefix(std::span<const llm::PageId> row, const std::vector<llm::TokenId>& tokens, std::int32_t n,
                    llm::RequestId id) const {
    std::uint64_t kv = kSeed;
    for (std::int32_t i = 0; i < n; ++i) {
      kv = mix(kv, tokens[std::size_t(i)], i);
      const auto slot = std::size_t(row[std::size_t(i / p_)]) * std::size_t(p_) + std::size_t(i % p_);
      if (kv_[slot] != kv)
        throw std::logic_error("request " + std::to_string(id) + ": K/V of position " + std::to_string(i) +
                               " (slot " + std::to_string(slot) + ") is not what its prefix computes");
    }
  }

 private:
  std::size_t slot_of(const llm::ScheduledSeq& q, std::int32_t pos) const {
    return std::size_t(q.block_table[std::size_t(pos / p_)]) * std::size_t(p_) + std::size_t(pos % p_);
  }
  [[noreturn]] static void fail(const llm::ScheduledSeq& q, const std::string& m) {
    throw std::logic_error("request " + std::to_string(q.id) + " [" + std::to_string(q.begin) + ", " +
                           std::to_string(q.end) + "): " + m);
  }
  std::int32_t p_, vocab_;
  std::vector<std::uint64_t> kv_;
};

}  // namespace aipe::test
