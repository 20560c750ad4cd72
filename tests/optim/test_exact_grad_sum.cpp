// ExactGradSum: micro-batch gradients summed to the same bits whatever their order and grouping
// over processes (simulated here by threads that combine through shared memory).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

#include "qkv/optim/exact_grad_sum.h"
#include "qkv/rng.h"

using namespace qkv;

namespace {

using Grads = std::vector<std::vector<float>>;  // [tensor][element] of one micro-batch

// Gradients of a wide dynamic range (2^-20 to 2^5), so that float sums depend on their order.
std::vector<Grads> random_micro_batches(int count, const std::vector<int64_t>& sizes) {
  Rng rng(11);
  std::vector<Grads> out(count);
  for (Grads& g : out)
    for (int64_t n : sizes) {
      std::vector<float> v(n);
      for (float& x : v) x = rng.normal() * std::ldexp(1.0f, int(rng.below(26)) - 20);
      g.push_back(std::move(v));
    }
  return out;
}

NamedTensors make_params(const std::vector<int64_t>& sizes) {
  NamedTensors params;
  for (size_t i = 0; i < sizes.size(); ++i)
    params.emplace_back(fmt::format("p{}", i), Tensor::zeros({sizes[i]}, true));
  return params;
}

// What a backward leaves: a grad holding these values.
void set_grad(const Tensor& p, const std::vector<float>& values) {
  p.set_grad(Tensor::from_vector(p.shape(), values));
}

// N threads standing in for N processes: each publishes its part, waits for all, combines all.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), barrier_(n), ints_(n), longs_(n) {}

  class Member : public optim::CrossProcess {
   public:
    Member(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
    void max(std::span<int32_t> v) const override {
      g_.ints_[rank_].assign(v.begin(), v.end());
      g_.barrier_.arrive_and_wait();
      for (const auto& other : g_.ints_)
        for (size_t i = 0; i < v.size(); ++i) v[i] = std::max(v[i], other[i]);
      g_.barrier_.arrive_and_wait();
    }
    void sum(std::span<int64_t> v) const override {
      g_.longs_[rank_].assign(v.begin(), v.end());
      g_.barrier_.arrive_and_wait();
      std::fill(v.begin(), v.end(), 0);
      for (const auto& other : g_.longs_)
        for (size_t i = 0; i < v.size(); ++i) v[i] += other[i];
      g_.barrier_.arrive_and_wait();
    }

   private:
    ThreadGroup& g_;
    int rank_;
  };

 private:
  int n_;
  std::barrier<> barrier_;
  std::vector<std::vector<int32_t>> ints_;
  std::vector<std::vector<int64_t>> longs_;
};

bool same_bits(const Grads& a, const Grads& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() ||
        (!a[i].empty() &&  // an empty vector's data() may be null, which memcmp may not take
         std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0))
      return false;
  return true;
}

// The grads every process ends with when process r takes the micro-batches groups[r], in that
// order; checks that all processes agree and returns them ([tensor][element]; empty: no grad).
// With overlap, each process's last micro-batch is reduced in buckets of bucket_elements as a
// backward would report its tensors: the last first, and only those it reached.
Grads exact_sum_once(const std::vector<Grads>& micro, const std::vector<int64_t>& sizes,
                     const std::vector<std::vector<int>>& groups, int64_t bucket_elements) {
  const int n = int(groups.size());
  ThreadGroup group(n);
  std::vector<Grads> results(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      const NamedTensors params = make_params(sizes);
      optim::ExactGradSum sum(params, bucket_elements > 0 ? bucket_elements
                                                          : optim::ExactGradSum::kBucketElements);
      ThreadGroup::Member member(group, r);
      for (size_t k = 0; k < groups[r].size(); ++k) {
        const Grads& g = micro[groups[r][k]];
        if (bucket_elements > 0 && k + 1 == groups[r].size()) {
          const LeafDone done = sum.reduce_during_backward(int64_t(micro.size()), member);
          for (size_t i = sizes.size(); i-- > 0;)
            if (!g[i].empty()) set_grad(params[i].second, g[i]), done(params[i].second);
          break;
        }
        for (size_t i = 0; i < sizes.size(); ++i)
          if (!g[i].empty()) set_grad(params[i].second, g[i]);
        sum.take_micro_batch();
      }
      sum.finish(int64_t(micro.size()), n > 1 ? &member : nullptr);
      for (const auto& [name, p] : params)
        results[r].push_back(p.grad().defined() ? p.grad().to_vector() : std::vector<float>());
    });
  for (std::thread& t : threads) t.join();
  for (int r = 1; r < n; ++r) CHECK(same_bits(results[r], results[0]));
  return results[0];
}

// The same, after the backward and, with several processes, overlapped with it in buckets of
// one tensor, and of about 1000 elements: all give the same bits.
Grads exact_sum(const std::vector<Grads>& micro, const std::vector<int64_t>& sizes,
                const std::vector<std::vector<int>>& groups) {
  const Grads after = exact_sum_once(micro, sizes, groups, 0);
  if (groups.size() > 1)
    for (int64_t bucket_elements : {1, 1000}) {
      CAPTURE(bucket_elements);
      CHECK(same_bits(exact_sum_once(micro, sizes, groups, bucket_elements), after));
    }
  return after;
}

}  // namespace

TEST_CASE("exact grad sum: the same bits whatever the order and grouping of micro-batches") {
  // One tensor large enough for the threaded loops, one tiny, one in between.
  const std::vector<int64_t> sizes{70000, 7, 1000};
  const auto micro = random_micro_batches(4, sizes);
  const Grads one = exact_sum(micro, sizes, {{0, 1, 2, 3}});
  CHECK(same_bits(exact_sum(micro, sizes, {{3, 1, 0, 2}}), one));
  CHECK(same_bits(exact_sum(micro, sizes, {{0, 1}, {2, 3}}), one));
  CHECK(same_bits(exact_sum(micro, sizes, {{2, 1}, {3, 0}}), one));
  CHECK(same_bits(exact_sum(micro, sizes, {{0}, {1}, {2}, {3}}), one));
  CHECK(same_bits(exact_sum(micro, sizes, {{3}, {0}, {2}, {1}}), one));

  // The data is such that float sums in those two orders differ: the test can fail.
  int differ = 0;
  for (size_t i = 0; i < sizes.size(); ++i)
    for (int64_t j = 0; j < sizes[i]; ++j) {
      const float a = ((micro[0][i][j] + micro[1][i][j]) + micro[2][i][j]) + micro[3][i][j];
      const float b = ((micro[3][i][j] + micro[1][i][j]) + micro[0][i][j]) + micro[2][i][j];
      differ += a != b;
    }
  CHECK(differ > 100);

  // And the sum is the exact sum rounded once, up to the fixed point's rounding.
  for (size_t i = 0; i < sizes.size(); ++i) {
    double largest = 0;
    for (const Grads& g : micro)
      for (float x : g[i]) largest = std::max(largest, double(std::abs(x)));
    for (int64_t j = 0; j < sizes[i]; ++j) {
      double exact = 0;  // in double: 53 bits hold these sums to far below float's rounding
      for (const Grads& g : micro) exact += double(g[i][j]);
      const double err = std::abs(double(one[i][j]) - exact);
      REQUIRE(err <= std::ldexp(std::abs(exact), -24) + std::ldexp(largest, -58));
    }
  }
}

TEST_CASE("exact grad sum: a non-finite micro-batch makes its tensor NaN; others are exact") {
  const std::vector<int64_t> sizes{50, 50};
  auto micro = random_micro_batches(2, sizes);
  micro[1][0][17] = INFINITY;
  const Grads sum = exact_sum(micro, sizes, {{0}, {1}});
  CHECK(std::all_of(sum[0].begin(), sum[0].end(), [](float x) { return std::isnan(x); }));
  CHECK(std::none_of(sum[1].begin(), sum[1].end(), [](float x) { return std::isnan(x); }));
}

TEST_CASE("exact grad sum: a tensor one process has no grad for still gets the others' sum") {
  const std::vector<int64_t> sizes{10, 10};
  auto micro = random_micro_batches(2, sizes);
  micro[0][1].clear();  // micro-batch 0 did not reach tensor 1
  // Values of one binade: the fixed point holds all their bits.
  for (size_t j = 0; j < micro[1][1].size(); ++j) micro[1][1][j] = 1.0f + float(j) / 16;
  const Grads sum = exact_sum(micro, sizes, {{0}, {1}});
  CHECK(same_bits({sum[1]}, {micro[1][1]}));  // one addend is its own sum, exactly
  // A tensor no micro-batch reached stays without a grad.
  micro[1][1].clear();
  CHECK(exact_sum(micro, sizes, {{0}, {1}})[1].empty());
  // All-zero grads sum to zeros.
  std::fill(micro[0][0].begin(), micro[0][0].end(), 0.0f);
  std::fill(micro[1][0].begin(), micro[1][0].end(), 0.0f);
  CHECK(exact_sum(micro, sizes, {{0, 1}})[0] == std::vector<float>(10, 0.0f));
}
