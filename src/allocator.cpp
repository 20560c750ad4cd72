// Size-bucketed caching allocator. Buckets are 2^k * {4,5,6,7}/4 bytes (k >= 6), so two
// requests of nearly the same size share a bucket and a block is never more than 25% too big.
//
// Blocks of 64 KiB and more are carved from arenas of at least 64 MiB that ask the kernel for
// transparent huge pages (madvise): a training step sweeps tens of MB of activations, whose TLB
// misses with 4 KiB pages show in the step time. Blocks are never
// handed back to an arena; an arena is returned to the system whole, by
// empty_allocator_cache(), once every block carved from it sits unused in the cache.
#include "qkv/allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "qkv/error.h"

namespace qkv {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kArenaMinBlock = size_t{64} << 10;  // smaller blocks come from malloc
constexpr size_t kArenaBytes = size_t{64} << 20;

size_t bucket_bytes(int64_t numel) {
  const size_t want = std::max<size_t>(static_cast<size_t>(numel) * sizeof(float), kAlign);
  const int k = std::bit_width(want) - 1;  // 2^k <= want < 2^(k+1)
  const size_t base = size_t{1} << k;
  const size_t quarter = std::max<size_t>(base / 4, kAlign);
  return (want + quarter - 1) / quarter * quarter;
}

struct Arena {
  char* base = nullptr;
  size_t size = 0;
  size_t used = 0;    // bytes carved so far, from the start
  int64_t blocks = 0;  // blocks carved from it
};

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  std::vector<Arena> arenas;  // the last one is carved from
  AllocatorStats stats;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: storage may be released during static teardown
  return *c;
}

// A new block of `bytes` (>= kArenaMinBlock) from the current arena, or from a new one; null
// when the system has no memory for a new arena. Caller holds c.mu.
void* carve(Cache& c, size_t bytes) {
  if (c.arenas.empty() || c.arenas.back().size - c.arenas.back().used < bytes) {
    const size_t size = std::max(kArenaBytes, (bytes + kHugePage - 1) / kHugePage * kHugePage);
    void* p = std::aligned_alloc(kHugePage, size);
    if (!p) return nullptr;
    madvise(p, size, MADV_HUGEPAGE);  // a hint: without THP the memory works the same
    c.arenas.push_back({static_cast<char*>(p), size, 0, 0});
  }
  Arena& a = c.arenas.back();
  void* p = a.base + a.used;
  a.used += bytes;
  a.blocks++;
  return p;
}

// One line for the user naming the request, where a bare bad_alloc would say nothing.
[[noreturn]] void out_of_memory(int64_t numel, int64_t bytes_in_use) {
  throw Error(fmt::format(
      "out of memory: cannot allocate a tensor of {} floats ({:.3g} GB; {:.3g} GB already in "
      "use); lower the model's sizes (model.n_layer, model.n_embd, model.block_size) or "
      "train.batch_size",
      numel, double(numel) * sizeof(float) / 1e9, double(bytes_in_use) / 1e9));
}

void count_allocation(Cache& c, size_t bytes) {
  c.stats.system_allocs++;
  c.stats.bytes_in_use += static_cast<int64_t>(bytes);
}

}  // namespace

float* allocate_floats(int64_t numel) {
  // Larger than any memory, and large enough to overflow the byte count below.
  if (numel < 0 || uint64_t(numel) > SIZE_MAX / 8)
    out_of_memory(numel, allocator_stats().bytes_in_use);
  const size_t bytes = bucket_bytes(numel);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    auto it = c.free_lists.find(bytes);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.bytes_in_use += static_cast<int64_t>(bytes);
      c.stats.cache_hits++;
      c.stats.bytes_cached -= static_cast<int64_t>(bytes);
      return static_cast<float*>(p);
    }
    if (bytes >= kArenaMinBlock) {
      void* p = carve(c, bytes);
      if (!p) out_of_memory(numel, c.stats.bytes_in_use);
      count_allocation(c, bytes);
      return static_cast<float*>(p);
    }
  }
  void* p = std::aligned_alloc(kAlign, bytes);
  if (!p) out_of_memory(numel, allocator_stats().bytes_in_use);
  std::lock_guard lock(c.mu);
  count_allocation(c, bytes);
  return static_cast<float*>(p);
}

void release_floats(float* p, int64_t numel) {
  if (!p) return;
  const size_t bytes = bucket_bytes(numel);
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  c.free_lists[bytes].push_back(p);
  c.stats.bytes_in_use -= static_cast<int64_t>(bytes);
  c.stats.bytes_cached += static_cast<int64_t>(bytes);
}

AllocatorStats allocator_stats() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  return c.stats;
}

void empty_allocator_cache() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  auto arena_of = [&c](const void* p) -> Arena* {
    for (Arena& a : c.arenas)
      if (p >= a.base && p < a.base + a.size) return &a;
    return nullptr;
  };
  // Count each arena's cached blocks; an arena whose blocks are all cached can go.
  std::vector<int64_t> cached(c.arenas.size(), 0);
  for (auto& [bytes, list] : c.free_lists)
    for (void* p : list)
      if (Arena* a = arena_of(p)) cached[static_cast<size_t>(a - c.arenas.data())]++;
  std::vector<bool> drop(c.arenas.size());
  for (size_t i = 0; i < c.arenas.size(); ++i) drop[i] = cached[i] == c.arenas[i].blocks;
  for (auto& [bytes, list] : c.free_lists) {
    std::vector<void*> keep;
    for (void* p : list) {
      Arena* a = arena_of(p);
      if (!a) {
        std::free(p);
      } else if (!drop[static_cast<size_t>(a - c.arenas.data())]) {
        keep.push_back(p);
        continue;
      }
      c.stats.bytes_cached -= static_cast<int64_t>(bytes);
    }
    list = std::move(keep);
  }
  std::vector<Arena> kept;
  for (size_t i = 0; i < c.arenas.size(); ++i) {
    if (drop[i])
      std::free(c.arenas[i].base);
    else
      kept.push_back(c.arenas[i]);
  }
  c.arenas = std::move(kept);
}

}  // namespace qkv
