#pragma once
// Paged KV-cache block manager: N pages of P token slots each. The kernels see the cache as
// [num_pages][P][kv_heads][d] and, per sequence, a block-table row of int32 page ids: token t of a sequence
// lives in page row[t / P] at offset t % P, i.e. in slot row[t / P] * P + t % P of the flattened cache.
//
// Every page is in exactly one of three states:
//   free    reference count 0, no content worth keeping; on the free list
//   cached  reference count 0, a full page whose content is known by its prefix hash; evictable, in LRU order
//   used    reference count >= 1: in the block table of that many sequences
// so free + cached + used == N at all times. Only full, computed pages carry a hash, and only hashed pages are
// shared (a sequence never writes into a page another sequence reads: new slots always go to the sequence's own
// last partial page or to a fresh page).
//
// Prefix caching (vLLM's automatic prefix caching): page i of a token sequence is identified by
// h_i = XXH3_64(token ids of page i, seed = h_{i-1}), h_{-1} = kRootHash, so equal hashes mean equal prefixes up
// to the end of that page. A lookup also compares the cached page's parent hash and token ids, so a false hit
// needs a 64-bit collision of two different parent prefixes whose last pages hold identical tokens.
// It needs libxxhash (Debian: libxxhash-dev); without it aipe builds with prefix caching unavailable.
//
// Deterministic: pages are handed out lowest id first from a fresh manager, then LIFO from the free list, then by
// evicting the least recently freed cached page. No threads inside; the caller serializes.
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace aipe::llm {

using TokenId = std::int32_t;
using PageId = std::int32_t;
using SlotId = std::int32_t;   // page * P + offset; the manager checks that N * P fits
using SeqId = std::int64_t;

// Whether this build has the prefix cache (libxxhash was found at configure time).
bool prefix_caching_available();

// The chained page hash described above (throws std::logic_error when prefix caching is unavailable).
inline constexpr std::uint64_t kRootHash = 0x9e3779b97f4a7c15ull;
std::uint64_t page_hash(std::uint64_t parent, std::span<const TokenId> page_tokens);

struct BlockManagerConfig {
  std::int32_t num_pages = 0;   // N
  std::int32_t page_size = 16;  // P tokens per page
  // Pages kept free when a new sequence is admitted, so running sequences can still grow a while before
  // anything is preempted (vLLM's watermark). Fraction of N, rounded down; 0 <= watermark < 1.
  double watermark = 0.01;
  // Needs prefix_caching_available(); asking for it in a build without libxxhash is an error.
  bool enable_prefix_caching = false;
};

// The longest cached prefix of a token sequence, in whole pages.
struct PrefixHit {
  std::vector<PageId> pages;
  std::vector<std::uint64_t> hashes;  // h_i of each page above
  std::int32_t num_tokens = 0;        // pages.size() * P
};

struct PrefixCacheStats {
  std::uint64_t queried_tokens = 0;  // tokens of the sequences admitted (what could have hit)
  std::uint64_t hit_tokens = 0;      // of those, found in the cache
  std::uint64_t evictions = 0;       // cached pages reclaimed for new content
  double hit_rate() const { return queried_tokens ? double(hit_tokens) / double(queried_tokens) : 0.0; }
};

class BlockManager {
 public:
  explicit BlockManager(const BlockManagerConfig& cfg);  // std::invalid_argument naming a bad field

  std::int32_t num_pages() const { return n_; }
  std::int32_t page_size() const { return p_; }
  std::int32_t watermark_pages() const { return watermark_pages_; }
  bool prefix_caching() const { return caching_; }

  std::int32_t num_free_pages() const { return static_cast<std::int32_t>(free_.size()); }
  std::int32_t num_cached_pages() const { return num_cached_; }
  std::int32_t num_used_pages() const { return n_ - num_free_pages() - num_cached_; }
  // Pages a new allocation can take: free ones, then cached ones by eviction.
  std::int32_t num_allocatable_pages() const { return num_free_pages() + num_cached_; }
  double usage() const { return n_ ? double(num_used_pages()) / double(n_) : 0.0; }  // KV use, 0..1
  static std::int32_t pages_for(std::int32_t tokens, std::int32_t page_size) {
    return (tokens + page_size - 1) / page_size;
  }

  // The longest run of leading full pages of `tokens` found in the cache, leaving at least one token to
  // compute (a fully cached prompt still needs its last token's logits): at most (tokens.size() - 1) / P pages.
  // Changes nothing; empty without prefix caching.
  PrefixHit find_cached_prefix(std::span<const TokenId> tokens) const;

  // Queries: whether admit(hit, num_new_tokens) of a new sequence would succeed (keeping the watermark free),
  // and whether a held sequence can grow by n slots (no watermark: running sequences may use it).
  bool can_admit(const PrefixHit& hit, std::int32_t num_new_tokens) const;
  bool can_append(SeqId seq, std::int32_t n) const;

  // A new sequence: takes a reference on each hit page, then slots for num_new_tokens tokens after them.
  // Returns the new tokens' slots, or nullopt (nothing changed) when that would eat into the watermark.
  // `num_query_tokens` is the length looked up (for the hit-rate counters). Throws on a held seq id or a hit
  // that is no longer valid.
  std::optional<std::vector<SlotId>> admit(SeqId seq, const PrefixHit& hit, std::int32_t num_new_tokens,
                                           std::int32_t num_query_tokens);
  // Slots for the next n tokens of a held sequence (positions num_slots(seq) ... + n - 1), or nullopt
  // (nothing changed) when there are not enough allocatable pages.
  std::optional<std::vector<SlotId>> append_slots(SeqId seq, std::int32_t n);
  // Records that the first num_computed tokens of the sequence have their KV written: each page they fill
  // completely gets its hash and enters the hash -> page map (unless an identical page is already there).
  // `tokens` holds at least num_computed ids of the sequence. No-op without prefix caching.
  void mark_computed(SeqId seq, std::span<const TokenId> tokens, std::int32_t num_computed);
  // Drops the sequence's references (finish, cancel, preemption). Its hashed pages whose count reaches 0 become
  // cached (the last page first, so a prefix's tail is evicted before its head); the others become free.
  void free(SeqId seq);

  bool holds(SeqId seq) const { return seqs_.count(seq) != 0; }
  std::span<const PageId> block_table(SeqId seq) const;  // the row the kernels read
  std::int32_t num_slots(SeqId seq) const;               // tokens with a slot
  std::int32_t num_sequences() const { return static_cast<std::int32_t>(seqs_.size()); }
  std::int32_t ref_count(PageId p) const;

  const PrefixCacheStats& prefix_stats() const { return stats_; }

  // Checks every invariant (states partition the N pages, free list and LRU hold no duplicates, reference counts
  // equal the number of block-table entries, unhashed pages are in at most one table and no page twice in one,
  // the hash map and page hashes agree, each table covers its slots exactly). Throws std::logic_error naming the
  // first violation. O(N + total table length): for tests and the fuzz target.
  void check_invariants() const;

 private:
  struct Page {
    std::int32_t ref = 0;
    bool hashed = false;
    std::uint64_t hash = 0, parent = 0;
    std::int32_t lru_prev = -1, lru_next = -1;  // the cached pages' LRU list (head = least recent)
    bool in_lru = false;
  };
  struct Seq {
    std::vector<PageId> pages;
    std::vector<std::uint64_t> hashes;  // chain hash of each computed full page (registered in the map or not)
    std::int32_t num_slots = 0;
  };

  std::optional<PageId> take_page();  // free list, else evict the LRU cached page
  void lru_push_back(PageId p);
  void lru_remove(PageId p);
  std::span<const TokenId> page_tokens(PageId p) const {
    return {tokens_.data() + std::size_t(p) * std::size_t(p_), std::size_t(p_)};
  }
  const Seq& seq_or_throw(SeqId seq, const char* what) const;
  std::int32_t new_pages_needed(const Seq* s, std::int32_t num_slots_after_hit, std::int32_t n) const;

  std::int32_t n_ = 0, p_ = 0, watermark_pages_ = 0;
  bool caching_ = false;
  std::vector<Page> pages_;
  std::vector<PageId> free_;                            // a stack; back() is handed out next
  std::int32_t lru_head_ = -1, lru_tail_ = -1, num_cached_ = 0;
  std::unordered_map<std::uint64_t, PageId> by_hash_;   // hashed pages, used or cached
  std::vector<TokenId> tokens_;                         // [N][P] token ids of hashed pages, to verify hits
  std::unordered_map<SeqId, Seq> seqs_;
  PrefixCacheStats stats_;
};

}  // namespace aipe::llm
