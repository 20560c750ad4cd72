// The caching allocator behind every tensor's storage: 64-byte aligned blocks in size buckets
// (four per power of two, so at most 25% is wasted), kept on free lists instead of returned to
// the system. After the first training step every request is served from the cache.
#pragma once

#include <cstdint>

namespace qkv {

struct AllocatorStats {
  int64_t system_allocs = 0;  // blocks obtained from the system since start (never decreases)
  int64_t cache_hits = 0;     // requests served from a free list
  int64_t bytes_in_use = 0;   // bucket bytes handed out and not yet returned
  int64_t bytes_cached = 0;   // bucket bytes sitting on free lists
};

// 64-byte aligned; never null. Out of memory throws qkv::Error naming the request's size.
float* allocate_floats(int64_t numel);
void release_floats(float* p, int64_t numel);   // numel as given to allocate_floats
AllocatorStats allocator_stats();
void empty_allocator_cache();                   // returns every cached block to the system

}  // namespace qkv
