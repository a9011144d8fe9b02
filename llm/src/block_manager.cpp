#include "aipe/llm/block_manager.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#if AIPE_HAVE_XXHASH
#include <xxhash.h>
#endif

namespace aipe::llm {

bool prefix_caching_available() { return AIPE_HAVE_XXHASH != 0; }

std::uint64_t page_hash(std::uint64_t parent, std::span<const TokenId> page_tokens) {
#if AIPE_HAVE_XXHASH
  // The ids' bytes in host order: hashes are compared within one process only, never stored.
  return XXH3_64bits_withSeed(page_tokens.data(), page_tokens.size_bytes(), parent);
#else
  (void)parent;
  (void)page_tokens;
  throw std::logic_error("page_hash: aipe was built without libxxhash (Debian: libxxhash-dev), so without prefix caching");
#endif
}

BlockManager::BlockManager(const BlockManagerConfig& cfg) {
  if (cfg.num_pages < 1)
    throw std::invalid_argument("BlockManager: num_pages must be >= 1 (got " + std::to_string(cfg.num_pages) + ")");
  if (cfg.page_size < 1)
    throw std::invalid_argument("BlockManager: page_size must be >= 1 (got " + std::to_string(cfg.page_size) + ")");
  if (std::int64_t(cfg.num_pages) * cfg.page_size > std::numeric_limits<SlotId>::max())
    throw std::invalid_argument("BlockManager: num_pages * page_size = " +
                                std::to_string(std::int64_t(cfg.num_pages) * cfg.page_size) +
                                " slots do not fit the int32 slot ids");
  if (!(cfg.watermark >= 0.0 && cfg.watermark < 1.0))
    throw std::invalid_argument("BlockManager: watermark must be in [0, 1) (got " + std::to_string(cfg.watermark) + ")");
  if (cfg.enable_prefix_caching && !prefix_caching_available())
    throw std::invalid_argument(
        "BlockManager: enable_prefix_caching needs libxxhash, which this build lacks (Debian: libxxhash-dev; "
        "reconfigure after installing it)");
  n_ = cfg.num_pages;
  p_ = cfg.page_size;
  watermark_pages_ = static_cast<std::int32_t>(std::floor(cfg.watermark * n_));
  caching_ = cfg.enable_prefix_caching;
  pages_.resize(std::size_t(n_));
  free_.reserve(std::size_t(n_));
  for (PageId p = n_ - 1; p >= 0; --p) free_.push_back(p);  // page 0 is handed out first
  if (caching_) tokens_.resize(std::size_t(n_) * std::size_t(p_));
}

void BlockManager::lru_push_back(PageId p) {
  Page& pg = pages_[std::size_t(p)];
  pg.lru_prev = lru_tail_;
  pg.lru_next = -1;
  if (lru_tail_ >= 0) pages_[std::size_t(lru_tail_)].lru_next = p;
  else lru_head_ = p;
  lru_tail_ = p;
  pg.in_lru = true;
  ++num_cached_;
}

void BlockManager::lru_remove(PageId p) {
  Page& pg = pages_[std::size_t(p)];
  if (pg.lru_prev >= 0) pages_[std::size_t(pg.lru_prev)].lru_next = pg.lru_next;
  else lru_head_ = pg.lru_next;
  if (pg.lru_next >= 0) pages_[std::size_t(pg.lru_next)].lru_prev = pg.lru_prev;
  else lru_tail_ = pg.lru_prev;
  pg.lru_prev = pg.lru_next = -1;
  pg.in_lru = false;
  --num_cached_;
}

std::optional<PageId> BlockManager::take_page() {
  if (!free_.empty()) {
    const PageId p = free_.back();
    free_.pop_back();
    return p;
  }
  if (lru_head_ < 0) return std::nullopt;
  // Evict the least recently freed cached page: its content is forgotten (hash out of the map).
  const PageId p = lru_head_;
  lru_remove(p);
  Page& pg = pages_[std::size_t(p)];
  by_hash_.erase(pg.hash);
  pg.hashed = false;
  ++stats_.evictions;
  return p;
}

const BlockManager::Seq& BlockManager::seq_or_throw(SeqId seq, const char* what) const {
  const auto it = seqs_.find(seq);
  if (it == seqs_.end())
    throw std::invalid_argument(std::string("BlockManager::") + what + ": sequence " + std::to_string(seq) +
                                " holds no pages");
  return it->second;
}

std::span<const PageId> BlockManager::block_table(SeqId seq) const { return seq_or_throw(seq, "block_table").pages; }
std::int32_t BlockManager::num_slots(SeqId seq) const { return seq_or_throw(seq, "num_slots").num_slots; }

std::int32_t BlockManager::ref_count(PageId p) const {
  if (p < 0 || p >= n_)
    throw std::invalid_argument("BlockManager::ref_count: page " + std::to_string(p) + " is not in [0, " +
                                std::to_string(n_) + ")");
  return pages_[std::size_t(p)].ref;
}

PrefixHit BlockManager::find_cached_prefix(std::span<const TokenId> tokens) const {
  PrefixHit hit;
  if (!caching_ || tokens.empty()) return hit;
  const std::size_t max_pages = (tokens.size() - 1) / std::size_t(p_);
  std::uint64_t parent = kRootHash;
  for (std::size_t i = 0; i < max_pages; ++i) {
    const auto chunk = tokens.subspan(i * std::size_t(p_), std::size_t(p_));
    const std::uint64_t h = page_hash(parent, chunk);
    const auto it = by_hash_.find(h);
    if (it == by_hash_.end()) break;
    const Page& pg = pages_[std::size_t(it->second)];
    if (pg.parent != parent || !std::equal(chunk.begin(), chunk.end(), page_tokens(it->second).begin())) break;
    hit.pages.push_back(it->second);
    hit.hashes.push_back(h);
    parent = h;
  }
  hit.num_tokens = static_cast<std::int32_t>(hit.pages.size()) * p_;
  return hit;
}

std::int32_t BlockManager::new_pages_needed(const Seq* s, std::int32_t num_slots_after_hit, std::int32_t n) const {
  const std::int32_t have = s ? static_cast<std::int32_t>(s->pages.size()) : pages_for(num_slots_after_hit, p_);
  const std::int32_t slots = (s ? s->num_slots : num_slots_after_hit) + n;
  return std::max(0, pages_for(slots, p_) - have);
}

bool BlockManager::can_admit(const PrefixHit& hit, std::int32_t num_new_tokens) const {
  if (num_new_tokens < 0) return false;
  std::int32_t from_lru = 0;  // hit pages nobody holds now: taking them shrinks the allocatable pool
  for (PageId p : hit.pages)
    if (p >= 0 && p < n_ && pages_[std::size_t(p)].ref == 0) ++from_lru;
  const std::int32_t need = new_pages_needed(nullptr, hit.num_tokens, num_new_tokens);
  return num_allocatable_pages() - from_lru - need >= watermark_pages_;
}

bool BlockManager::can_append(SeqId seq, std::int32_t n) const {
  const auto it = seqs_.find(seq);
  if (it == seqs_.end() || n < 0) return false;
  return new_pages_needed(&it->second, 0, n) <= num_allocatable_pages();
}

std::optional<std::vector<SlotId>> BlockManager::admit(SeqId seq, const PrefixHit& hit, std::int32_t num_new_tokens,
                                                       std::int32_t num_query_tokens) {
  if (seqs_.count(seq))
    throw std::invalid_argument("BlockManager::admit: sequence " + std::to_string(seq) + " already holds pages");
  if (num_new_tokens < 0)
    throw std::invalid_argument("BlockManager::admit: num_new_tokens must be >= 0 (got " +
                                std::to_string(num_new_tokens) + ")");
  if (hit.pages.size() != hit.hashes.size() || hit.num_tokens != static_cast<std::int32_t>(hit.pages.size()) * p_)
    throw std::invalid_argument("BlockManager::admit: malformed prefix hit (pages, hashes and num_tokens disagree)");
  for (std::size_t i = 0; i < hit.pages.size(); ++i) {
    const PageId p = hit.pages[i];
    if (p < 0 || p >= n_ || !pages_[std::size_t(p)].hashed || pages_[std::size_t(p)].hash != hit.hashes[i])
      throw std::invalid_argument("BlockManager::admit: prefix hit page " + std::to_string(i) +
                                  " is no longer cached (look the prefix up again right before admitting)");
  }
  if (!can_admit(hit, num_new_tokens)) return std::nullopt;
  Seq s;
  s.pages.reserve(hit.pages.size() + std::size_t(pages_for(num_new_tokens, p_)));
  for (PageId p : hit.pages) {
    Page& pg = pages_[std::size_t(p)];
    if (pg.ref == 0) lru_remove(p);
    ++pg.ref;
    s.pages.push_back(p);
  }
  s.hashes = hit.hashes;
  s.num_slots = hit.num_tokens;
  stats_.queried_tokens += std::uint64_t(std::max(num_query_tokens, 0));
  stats_.hit_tokens += std::uint64_t(hit.num_tokens);
  seqs_.emplace(seq, std::move(s));
  auto slots = append_slots(seq, num_new_tokens);
  if (!slots) throw std::logic_error("BlockManager::admit: can_admit held but append_slots failed");
  return slots;
}

std::optional<std::vector<SlotId>> BlockManager::append_slots(SeqId seq, std::int32_t n) {
  const auto it = seqs_.find(seq);
  if (it == seqs_.end())
    throw std::invalid_argument("BlockManager::append_slots: sequence " + std::to_string(seq) + " holds no pages");
  if (n < 0) throw std::invalid_argument("BlockManager::append_slots: n must be >= 0 (got " + std::to_string(n) + ")");
  Seq& s = it->second;
  const std::int32_t need = new_pages_needed(&s, 0, n);
  if (need > num_allocatable_pages()) return std::nullopt;
  for (std::int32_t i = 0; i < need; ++i) {
    const PageId p = *take_page();  // cannot fail: counted above
    pages_[std::size_t(p)].ref = 1;
    s.pages.push_back(p);
  }
  std::vector<SlotId> slots(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) {
    const std::int32_t t = s.num_slots + i;
    slots[std::size_t(i)] = s.pages[std::size_t(t / p_)] * p_ + t % p_;
  }
  s.num_slots += n;
  return slots;
}

void BlockManager::mark_computed(SeqId seq, std::span<const TokenId> tokens, std::int32_t num_computed) {
  const auto it = seqs_.find(seq);
  if (it == seqs_.end())
    throw std::invalid_argument("BlockManager::mark_computed: sequence " + std::to_string(seq) + " holds no pages");
  Seq& s = it->second;
  if (num_computed < 0 || num_computed > s.num_slots || std::size_t(num_computed) > tokens.size())
    throw std::invalid_argument("BlockManager::mark_computed: num_computed " + std::to_string(num_computed) +
                                " exceeds the sequence's slots (" + std::to_string(s.num_slots) + ") or tokens (" +
                                std::to_string(tokens.size()) + ")");
  if (!caching_) return;
  const std::size_t full = std::size_t(num_computed / p_);
  while (s.hashes.size() < full) {
    const std::size_t i = s.hashes.size();
    const std::uint64_t parent = i ? s.hashes[i - 1] : kRootHash;
    const auto chunk = tokens.subspan(i * std::size_t(p_), std::size_t(p_));
    const std::uint64_t h = page_hash(parent, chunk);
    s.hashes.push_back(h);
    const PageId p = s.pages[i];
    Page& pg = pages_[std::size_t(p)];
    if (pg.hashed) continue;  // a hit page: already registered under this hash
    // An identical page computed by another sequence at the same time keeps the map entry; this one stays
    // private and is freed (not cached) when the sequence ends.
    if (!by_hash_.emplace(h, p).second) continue;
    pg.hashed = true;
    pg.hash = h;
    pg.parent = parent;
    std::copy(chunk.begin(), chunk.end(), tokens_.begin() + std::ptrdiff_t(std::size_t(p) * std::size_t(p_)));
  }
}

void BlockManager::free(SeqId seq) {
  const auto it = seqs_.find(seq);
  if (it == seqs_.end())
    throw std::invalid_argument("BlockManager::free: sequence " + std::to_string(seq) + " holds no pages");
  const Seq& s = it->second;
  for (auto p = s.pages.rbegin(); p != s.pages.rend(); ++p) {
    Page& pg = pages_[std::size_t(*p)];
    if (--pg.ref > 0) continue;
    if (pg.hashed) lru_push_back(*p);
    else free_.push_back(*p);
  }
  seqs_.erase(it);
}

void BlockManager::check_invariants() const {
  auto fail = [](const std::string& m) { throw std::logic_error("BlockManager invariant: " + m); };
  std::vector<int> state(std::size_t(n_), 0);  // 1 free, 2 cached
  for (PageId p : free_) {
    if (p < 0 || p >= n_) fail("free list holds page " + std::to_string(p) + " outside [0, N)");
    if (state[std::size_t(p)]) fail("page " + std::to_string(p) + " is on the free list twice");
    state[std::size_t(p)] = 1;
    if (pages_[std::size_t(p)].ref) fail("free page " + std::to_string(p) + " has references");
    if (pages_[std::size_t(p)].hashed) fail("free page " + std::to_string(p) + " still has a hash");
  }
  std::int32_t cached = 0, prev = -1;
  for (PageId p = lru_head_; p >= 0; p = pages_[std::size_t(p)].lru_next) {
    if (p >= n_) fail("LRU holds page " + std::to_string(p) + " outside [0, N)");
    if (state[std::size_t(p)]) fail("page " + std::to_string(p) + " is both free and cached, or cached twice");
    state[std::size_t(p)] = 2;
    const Page& pg = pages_[std::size_t(p)];
    if (pg.lru_prev != prev) fail("LRU back link broken at page " + std::to_string(p));
    if (pg.ref || !pg.hashed || !pg.in_lru) fail("cached page " + std::to_string(p) + " is referenced or unhashed");
    prev = p;
    if (++cached > n_) fail("LRU list is cyclic");
  }
  if (prev != lru_tail_) fail("LRU tail is not the last page of the list");
  if (cached != num_cached_) fail("cached count " + std::to_string(num_cached_) + " != LRU length " + std::to_string(cached));
  std::vector<std::int32_t> refs(std::size_t(n_), 0);
  for (const auto& [id, s] : seqs_) {
    if (s.pages.size() != std::size_t(pages_for(s.num_slots, p_)))
      fail("sequence " + std::to_string(id) + " holds " + std::to_string(s.pages.size()) + " pages for " +
           std::to_string(s.num_slots) + " slots");
    if (s.hashes.size() > s.pages.size()) fail("sequence " + std::to_string(id) + " has more hashes than pages");
    std::vector<PageId> sorted(s.pages);
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      fail("sequence " + std::to_string(id) + " holds a page twice");
    for (PageId p : s.pages) {
      if (p < 0 || p >= n_) fail("sequence " + std::to_string(id) + " holds page " + std::to_string(p) + " outside [0, N)");
      if (state[std::size_t(p)])
        fail("page " + std::to_string(p) + " is held by sequence " + std::to_string(id) + " and is free or cached");
      ++refs[std::size_t(p)];
    }
  }
  std::int32_t used = 0;
  for (PageId p = 0; p < n_; ++p) {
    const Page& pg = pages_[std::size_t(p)];
    if (pg.ref != refs[std::size_t(p)])
      fail("page " + std::to_string(p) + " has ref " + std::to_string(pg.ref) + " but " +
           std::to_string(refs[std::size_t(p)]) + " block-table entries");
    if (refs[std::size_t(p)] > 1 && !pg.hashed) fail("unhashed page " + std::to_string(p) + " is shared");
    if (pg.ref) ++used;
    if (!state[std::size_t(p)] && !pg.ref) fail("page " + std::to_string(p) + " is in no state (leaked)");
    if (pg.hashed) {
      const auto it = by_hash_.find(pg.hash);
      if (it == by_hash_.end() || it->second != p) fail("hashed page " + std::to_string(p) + " is not in the hash map");
    }
  }
  for (const auto& [h, p] : by_hash_)
    if (p < 0 || p >= n_ || !pages_[std::size_t(p)].hashed || pages_[std::size_t(p)].hash != h)
      fail("hash map entry points at page " + std::to_string(p) + " which does not carry that hash");
  if (num_free_pages() + num_cached_ + used != n_)
    fail("free " + std::to_string(num_free_pages()) + " + cached " + std::to_string(num_cached_) + " + used " +
         std::to_string(used) + " != N " + std::to_string(n_));
}

}  // namespace aipe::llm
