// Size-bucketed caching allocator. Buckets are 2^k * {4,5,6,7}/4 bytes (k >= 6), so two
// requests of nearly the same size share a bucket and a block is never more than 25% too big.
#include "qkv/allocator.h"

#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace qkv {
namespace {

constexpr size_t kAlign = 64;

size_t bucket_bytes(int64_t numel) {
  const size_t want = std::max<size_t>(static_cast<size_t>(numel) * sizeof(float), kAlign);
  const int k = std::bit_width(want) - 1;  // 2^k <= want < 2^(k+1)
  const size_t base = size_t{1} << k;
  const size_t quarter = std::max<size_t>(base / 4, kAlign);
  return (want + quarter - 1) / quarter * quarter;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  AllocatorStats stats;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: storage may be released during static teardown
  return *c;
}

}  // namespace

float* allocate_floats(int64_t numel) {
  const size_t bytes = bucket_bytes(numel);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    c.stats.bytes_in_use += static_cast<int64_t>(bytes);
    auto it = c.free_lists.find(bytes);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.cache_hits++;
      c.stats.bytes_cached -= static_cast<int64_t>(bytes);
      return static_cast<float*>(p);
    }
    c.stats.system_allocs++;
  }
  void* p = std::aligned_alloc(kAlign, bytes);
  if (!p) throw std::bad_alloc();
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
  for (auto& [bytes, list] : c.free_lists) {
    for (void* p : list) std::free(p);
    list.clear();
  }
  c.stats.bytes_cached = 0;
}

}  // namespace qkv
