// The engine, tested through two tiny ops defined here so that no op kernel can hide a bug.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "qkv/autograd.h"
#include "qkv/error.h"

using namespace qkv;

namespace {

Tensor scale(const Tensor& x, float s) {
  Tensor y = Tensor::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) y.data()[i] = s * x.data()[i];
  record(y, "scale", {x}, [s, n = x.numel()](const float* dy, GradOuts g) {
    if (float* dx = zero_if_fresh(g[0], n))
      for (int64_t i = 0; i < n; ++i) dx[i] += s * dy[i];
  });
  return y;
}

Tensor plus(const Tensor& a, const Tensor& b) {
  Tensor y = Tensor::empty(a.shape());
  for (int64_t i = 0; i < a.numel(); ++i) y.data()[i] = a.data()[i] + b.data()[i];
  record(y, "plus", {a, b}, [n = a.numel()](const float* dy, GradOuts g) {
    for (const GradOut& d : g)
      if (float* p = zero_if_fresh(d, n))
        for (int64_t i = 0; i < n; ++i) p[i] += dy[i];
  });
  return y;
}

Tensor total(const Tensor& x) {
  Tensor y = Tensor::zeros({});
  for (int64_t i = 0; i < x.numel(); ++i) y.data()[0] += x.data()[i];
  record(y, "total", {x}, [n = x.numel()](const float* dy, GradOuts g) {
    if (float* dx = zero_if_fresh(g[0], n))
      for (int64_t i = 0; i < n; ++i) dx[i] += dy[0];
  });
  return y;
}

// y = s·x like scale, but its backward writes dx when the grad is fresh, recording in
// *overwrites whether it was.
Tensor scale_writing(const Tensor& x, float s, std::vector<bool>* overwrites) {
  Tensor y = Tensor::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) y.data()[i] = s * x.data()[i];
  record(y, "scale_writing", {x}, [s, n = x.numel(), overwrites](const float* dy, GradOuts g) {
    const GradOut dx = g[0];
    overwrites->push_back(dx.overwrite);
    for (int64_t i = 0; i < n; ++i) dx.data[i] = (dx.overwrite ? 0.0f : dx.data[i]) + s * dy[i];
  });
  return y;
}

// y = a + 2·b + c, writing each fresh grad; *seen gets each GradOut's (data, overwrite) in the
// order the backward was handed them.
Tensor three_roles(const Tensor& a, const Tensor& b, const Tensor& c,
                   std::vector<std::pair<const float*, bool>>* seen) {
  Tensor y = Tensor::empty(a.shape());
  for (int64_t i = 0; i < a.numel(); ++i)
    y.data()[i] = a.data()[i] + 2 * b.data()[i] + (c.defined() ? c.data()[i] : 0.0f);
  record(y, "three_roles", {a, b, c}, [n = a.numel(), seen](const float* dy, GradOuts g) {
    for (size_t k = 0; k < g.size(); ++k) {
      seen->emplace_back(g[k].data, g[k].overwrite);
      // The second role first: a kernel's order of writes must not matter.
      const GradOut d = g[g.size() - 1 - k];
      const float s = g.size() - 1 - k == 1 ? 2.0f : 1.0f;
      if (d)
        for (int64_t i = 0; i < n; ++i) d.data[i] = (d.overwrite ? 0.0f : d.data[i]) + s * dy[i];
    }
  });
  return y;
}

}  // namespace

TEST_CASE("autograd: the first consumer of a fresh grad overwrites it, and later ones add") {
  std::vector<bool> overwrites;
  Tensor x = Tensor::from_vector({2}, {1, 2}, true);
  total(scale_writing(x, 3, &overwrites)).backward();
  CHECK(overwrites == std::vector<bool>{true});  // a fresh leaf grad
  CHECK(x.grad().to_vector() == std::vector<float>{3, 3});
  total(scale_writing(x, 3, &overwrites)).backward();
  CHECK(overwrites == std::vector<bool>{true, false});  // leaf grads accumulate across passes
  CHECK(x.grad().to_vector() == std::vector<float>{6, 6});
  // Two consumers of one tensor: the first to run writes, the second adds.
  overwrites.clear();
  x.zero_grad();
  total(plus(scale_writing(x, 2, &overwrites), scale_writing(x, 5, &overwrites))).backward();
  CHECK(overwrites == std::vector<bool>{true, false});
  CHECK(x.grad().to_vector() == std::vector<float>{7, 7});
  // A consumer that only adds (zero_if_fresh) first leaves nothing to overwrite.
  overwrites.clear();
  x.zero_grad();
  total(plus(scale(x, 2), scale_writing(x, 5, &overwrites))).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{7, 7});
}

TEST_CASE("autograd: GradOuts come in argument order, one tensor in two roles adds in both") {
  std::vector<std::pair<const float*, bool>> seen;
  Tensor x = Tensor::from_vector({2}, {1, 2}, true);
  Tensor w = Tensor::from_vector({2}, {3, 4}, true);
  Tensor none = Tensor::ones({2});  // needs no grad: a null GradOut in its place
  total(three_roles(w, none, x, &seen)).backward();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == std::pair<const float*, bool>{w.grad_data(), true});
  CHECK(seen[1] == std::pair<const float*, bool>{nullptr, false});
  CHECK(seen[2] == std::pair<const float*, bool>{x.grad_data(), true});
  CHECK(x.grad().to_vector() == std::vector<float>{1, 1});

  // x as a and c, fresh: zero-filled, both add, whichever role the kernel writes first.
  seen.clear();
  x.zero_grad();
  total(three_roles(x, none, x, &seen)).backward();
  CHECK(seen[0].second == false);
  CHECK(seen[2].second == false);
  CHECK(x.grad().to_vector() == std::vector<float>{2, 2});
  // x as a and b: 1 + 2; an undefined argument (no c) has a slot too.
  seen.clear();
  x.zero_grad();
  total(three_roles(x, x, Tensor(), &seen)).backward();
  CHECK(seen.size() == 3);
  CHECK(x.grad().to_vector() == std::vector<float>{3, 3});
}

TEST_CASE("autograd: set_grad installs a gradient computed elsewhere") {
  Tensor x = Tensor::from_vector({2}, {1, 2}, true);
  x.set_grad(Tensor::from_vector({2}, {5, 6}));
  CHECK(x.grad().to_vector() == std::vector<float>{5, 6});
  total(scale(x, 1)).backward();  // and a backward adds to it
  CHECK(x.grad().to_vector() == std::vector<float>{6, 7});
  CHECK_THROWS_AS(x.set_grad(Tensor::ones({3})), Error);
}

TEST_CASE("autograd: diamond graph sums both paths") {
  Tensor x = Tensor::from_vector({2}, {1, 2}, true);
  Tensor a = scale(x, 2), b = scale(x, 3);
  total(plus(a, b)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{5, 5});
}

TEST_CASE("autograd: a tensor used twice by one op gets both gradients") {
  Tensor x = Tensor::from_vector({3}, {1, 2, 3}, true);
  total(plus(x, x)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{2, 2, 2});
}

TEST_CASE("autograd: backward(leaf_done) reports each leaf once, as soon as its grad is final") {
  // loss = total(3·(w1 + w2) + 2·w2 + (w3 + w3)): the walk finishes w3 first, while w1 has no
  // gradient yet; w2, reached through two paths, only after the second.
  Tensor w1 = Tensor::from_vector({2}, {1, 2}, true);
  Tensor w2 = Tensor::from_vector({2}, {3, 4}, true);
  Tensor w3 = Tensor::from_vector({2}, {5, 6}, true);
  Tensor loss = total(plus(plus(scale(plus(w1, w2), 3), scale(w2, 2)), plus(w3, w3)));
  std::vector<std::pair<std::string, std::vector<float>>> done;  // name, grad when reported
  w1.set_name("w1"), w2.set_name("w2"), w3.set_name("w3");
  bool w1_started_when_w3_done = true;
  loss.backward([&](const Tensor& leaf) {
    if (leaf.name() == "w3") w1_started_when_w3_done = w1.grad().defined();
    done.emplace_back(leaf.name(), leaf.grad().to_vector());
  });
  REQUIRE(done.size() == 3);
  std::map<std::string, std::vector<float>> final_grads;
  for (const auto& [name, grad] : done) final_grads[name] = grad;
  CHECK(final_grads["w1"] == std::vector<float>{3, 3});
  CHECK(final_grads["w2"] == std::vector<float>{5, 5});
  CHECK(final_grads["w3"] == std::vector<float>{2, 2});
  CHECK(w2.grad().to_vector() == std::vector<float>{5, 5});  // and the grads stay
  CHECK(done.front().first == "w3");
  CHECK_FALSE(w1_started_when_w3_done);
  CHECK(done.back().first == "w2");
}

TEST_CASE("autograd: leaf grads accumulate across backward calls until zero_grad") {
  Tensor x = Tensor::from_vector({2}, {1, 1}, true);
  total(scale(x, 4)).backward();
  total(scale(x, 4)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{8, 8});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  total(scale(x, 4)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{4, 4});
}

TEST_CASE("autograd: NoGradGuard records no node and restores the mode") {
  Tensor x = Tensor::ones({2}, true);
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    Tensor y = scale(x, 2);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(grad_enabled());
  CHECK(scale(x, 2).grad_fn() != nullptr);
}

TEST_CASE("autograd: inputs that need no grad get no grad and no node") {
  Tensor x = Tensor::ones({2});
  Tensor y = scale(x, 2);
  CHECK(y.grad_fn() == nullptr);
  Tensor w = Tensor::ones({2}, true);
  total(plus(x, w)).backward();
  CHECK_FALSE(x.grad().defined());
  CHECK(w.grad().to_vector() == std::vector<float>{1, 1});
}

TEST_CASE("autograd: a chain of 10,000 ops runs backward without recursion") {
  Tensor x = Tensor::from_vector({1}, {1}, true);
  Tensor y = x;
  for (int i = 0; i < 10000; ++i) y = scale(y, 1.0f);
  total(y).backward();
  CHECK(x.grad().item() == 1.0f);
}

TEST_CASE("autograd: backward frees the graph, and a second backward is a clear error") {
  Tensor x = Tensor::ones({2}, true);
  Tensor h = scale(x, 3);
  Tensor loss = total(h);
  std::weak_ptr<Node> node = h.grad_fn();
  loss.backward();
  CHECK(node.expired());  // saved inputs released with the node
  CHECK(loss.grad_fn() == nullptr);
  CHECK_FALSE(h.grad().defined());  // intermediates keep no grad
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("already released"), Error);
  CHECK_THROWS_WITH_AS(total(h).backward(), doctest::Contains("already released"), Error);
}

TEST_CASE("autograd: backward on a non-scalar needs a seed of its shape") {
  Tensor x = Tensor::ones({2}, true);
  Tensor y = scale(x, 2);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("not a scalar"), Error);
  CHECK_THROWS_WITH_AS(y.backward(Tensor::ones({3})), doctest::Contains("seed gradient"), Error);
  y.backward(Tensor::from_vector({2}, {1, 10}));
  CHECK(x.grad().to_vector() == std::vector<float>{2, 20});
}

TEST_CASE("autograd: backward on a tensor that needs no grad is an error") {
  CHECK_THROWS_WITH_AS(Tensor::ones({}).backward(), doctest::Contains("does not require grad"),
                       Error);
}

TEST_CASE("autograd: detach cuts the graph but shares data") {
  Tensor x = Tensor::ones({2}, true);
  Tensor y = scale(x, 2);
  Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.data() == y.data());
  CHECK(scale(d, 2).grad_fn() == nullptr);
}

TEST_CASE("autograd: only leaves can change requires_grad") {
  Tensor y = scale(Tensor::ones({2}, true), 2);
  CHECK_THROWS_AS(y.set_requires_grad(false), Error);
}
