#include <doctest/doctest.h>

#include <algorithm>

#include <sstream>

#include "qkv/allocator.h"
#include "qkv/error.h"
#include "qkv/tensor.h"

using namespace qkv;

TEST_CASE("tensor: factories fill as named") {
  CHECK(Tensor::zeros({2, 3}).to_vector() == std::vector<float>(6, 0.0f));
  CHECK(Tensor::ones({4}).to_vector() == std::vector<float>(4, 1.0f));
  CHECK(Tensor::full({2}, 2.5f).to_vector() == std::vector<float>{2.5f, 2.5f});
  Tensor t = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  CHECK(t.at({1, 0}) == 3.0f);
  CHECK(t.shape() == Shape{2, 2});
  CHECK(t.numel() == 4);
  CHECK(t.size(-1) == 2);
  CHECK_THROWS_AS(Tensor::from_vector({3}, {1, 2}), Error);
  CHECK_THROWS_AS(t.at({2, 0}), Error);
  CHECK_THROWS_AS(t.item(), Error);
}

TEST_CASE("tensor: shapes hold at most four non-negative extents") {
  CHECK(Shape{}.numel() == 1);
  CHECK(Shape{2, 3, 4, 5}.numel() == 120);
  CHECK_THROWS_AS((Shape{1, 1, 1, 1, 1}), Error);
  CHECK_THROWS_AS((Shape{2, -1}), Error);
  CHECK(Shape{2, 3}.str() == "[2, 3]");
}

TEST_CASE("tensor: random factories are reproducible from the seed") {
  Rng a(42), b(42), c(43);
  Tensor x = Tensor::randn({100}, a), y = Tensor::randn({100}, b), z = Tensor::randn({100}, c);
  CHECK(x.to_vector() == y.to_vector());
  CHECK(x.to_vector() != z.to_vector());
  double mean = 0, var = 0;
  for (float v : x.to_vector()) mean += v / 100.0;
  for (float v : x.to_vector()) var += (v - mean) * (v - mean) / 100.0;
  CHECK(std::abs(mean) < 0.3);
  CHECK(var == doctest::Approx(1.0).epsilon(0.35));
  Rng r(1);
  for (float v : Tensor::uniform({1000}, r, -2, 3).to_vector()) {
    CHECK(v >= -2.0f);
    CHECK(v < 3.0f);
  }
}

TEST_CASE("tensor: rng state round-trips, so a saved state replays the same numbers") {
  Rng r(7);
  r.next_u32();
  const Rng::State s = r.state();
  const float first = r.normal();
  r.set_state(s);
  CHECK(r.normal() == first);
  for (int i = 0; i < 1000; ++i) CHECK(r.below(10) < 10u);
}

TEST_CASE("tensor: storage is 64-byte aligned") {
  for (int64_t n : {1, 3, 17, 1000, 4097}) {
    Tensor t = Tensor::empty({n});
    CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
  }
}

TEST_CASE("allocator: a freed block is reused for the same bucket, with no system allocation") {
  { Tensor warm = Tensor::empty({1000}); }
  const AllocatorStats before = allocator_stats();
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty({1000});
    Tensor u = Tensor::empty({990});  // same bucket as a 1000-float block, served by the cache
  }
  const AllocatorStats after = allocator_stats();
  CHECK(after.system_allocs - before.system_allocs <= 1);
  CHECK(after.cache_hits - before.cache_hits >= 19);
  CHECK(after.bytes_in_use == before.bytes_in_use);
}

TEST_CASE("allocator: large blocks come from huge-page arenas, aligned and reused") {
  const AllocatorStats before = allocator_stats();
  for (int i = 0; i < 5; ++i) {
    Tensor a = Tensor::empty({100000}), b = Tensor::empty({300000});  // 400 KB and 1.2 MB
    CHECK(reinterpret_cast<uintptr_t>(a.data()) % 64 == 0);
    CHECK(reinterpret_cast<uintptr_t>(b.data()) % 64 == 0);
    const bool apart = a.data() + 100000 <= b.data() || b.data() + 300000 <= a.data();
    CHECK(apart);
    std::fill_n(b.data(), 300000, 1.0f);  // the memory is usable to its end
  }
  const AllocatorStats after = allocator_stats();
  CHECK(after.system_allocs - before.system_allocs <= 2);
  CHECK(after.cache_hits - before.cache_hits >= 8);
}

TEST_CASE("allocator: empty_allocator_cache returns an arena whose blocks are all cached") {
  // 80 MB: more than any arena has left, so it gets an arena of its own.
  constexpr int64_t n = 20 << 20;
  { Tensor t = Tensor::empty({n}); }
  const AllocatorStats cached = allocator_stats();
  empty_allocator_cache();
  const AllocatorStats emptied = allocator_stats();
  CHECK(cached.bytes_cached - emptied.bytes_cached >= n * 4);
  CHECK(emptied.bytes_in_use == cached.bytes_in_use);
  Tensor again = Tensor::empty({n});  // not in the cache any more: a new block
  CHECK(allocator_stats().system_allocs == emptied.system_allocs + 1);
  again.data()[n - 1] = 1.0f;
}

TEST_CASE("tensor: printing shows shape, name and values") {
  std::ostringstream os;
  os << Tensor::from_vector({2}, {1, 2}).set_name("w");
  CHECK(os.str() == "tensor([2], 'w') [1, 2]");
  std::ostringstream big;
  big << Tensor::zeros({20});
  CHECK(big.str().find("... (20 values)") != std::string::npos);
}

TEST_CASE("allocator: a request the system cannot meet is one error naming its size") {
  const AllocatorStats before = allocator_stats();
  for (int64_t numel : {int64_t{1} << 50, int64_t{1} << 62, INT64_MAX}) {
    const std::string expected =
        fmt::format("out of memory: cannot allocate a tensor of {} floats", numel);
    CHECK_THROWS_WITH_AS(allocate_floats(numel), doctest::Contains(expected.c_str()), Error);
  }
  CHECK_THROWS_WITH_AS(Tensor::empty({int64_t{1} << 25, int64_t{1} << 25}),
                       doctest::Contains("out of memory: cannot allocate a tensor of"), Error);
  CHECK_THROWS_WITH_AS(Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}),
                       "shape [1099511627776, 1099511627776] has more elements than a 64-bit "
                       "count holds; lower the sizes that make it",
                       Error);
  CHECK(allocator_stats().bytes_in_use == before.bytes_in_use);
}
