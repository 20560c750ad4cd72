// Tests for src/ops/embedding.cpp.
#include <doctest/doctest.h>

#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

TEST_CASE("embedding: picks the rows named by the ids") {
  Tensor w = Tensor::from_vector({3, 2}, {0, 1, 10, 11, 20, 21});
  const std::vector<int32_t> ids{2, 0, 2, 1};
  Tensor y = embedding(w, ids, {2, 2});
  REQUIRE(y.shape() == Shape{2, 2, 2});
  CHECK(y.to_vector() == std::vector<float>{20, 21, 0, 1, 20, 21, 10, 11});
}

TEST_CASE("embedding: gradients match finite differences") {
  Rng rng(21);
  // C = 20 spans two 16-column blocks of the backward kernel; ids repeat and skip row 3.
  Tensor w = Tensor::randn({5, 20}, rng, 1.0f, true);
  const std::vector<int32_t> ids{4, 0, 1, 4, 2, 0};
  check_gradients("embedding [2,3]", [&] { return embedding(w, ids, {2, 3}); }, {w});
  check_gradients("embedding [6]", [&] { return embedding(w, ids, {6}); }, {w});
}

TEST_CASE("embedding: a repeated id accumulates its row gradient twice") {
  Tensor w = Tensor::zeros({3, 2}, true);
  const std::vector<int32_t> ids{1, 1, 0};
  Tensor y = embedding(w, ids, {3});
  y.backward(Tensor::from_vector({3, 2}, {1, 2, 3, 4, 5, 6}));
  CHECK(w.grad().to_vector() == std::vector<float>{5, 6, 4, 6, 0, 0});
}

TEST_CASE("embedding: an id outside the vocabulary names the id, its position and V") {
  Tensor w = Tensor::zeros({65, 4});
  w.set_name("tok_emb.weight");
  const std::vector<int32_t> ids{1, 2, 70};
  CHECK_THROWS_WITH_AS(embedding(w, ids, {3}),
                       doctest::Contains("embedding: id 70 at position 2 is out of range for "
                                         "weight 'tok_emb.weight' [65, 4] (V = 65)"),
                       Error);
  const std::vector<int32_t> negative{-1};
  CHECK_THROWS_WITH_AS(embedding(w, negative, {1}), doctest::Contains("id -1 at position 0"),
                       Error);
}

TEST_CASE("embedding: ids that do not fill ids_shape are rejected") {
  Tensor w = Tensor::zeros({4, 2});
  const std::vector<int32_t> ids{0, 1, 2};
  CHECK_THROWS_WITH_AS(embedding(w, ids, {2, 2}),
                       doctest::Contains("embedding: 3 ids do not fill ids shape [2, 2]"), Error);
  CHECK_THROWS_WITH_AS(embedding(Tensor::zeros({4}), ids, {3}),
                       doctest::Contains("embedding: weight [4] must be [V, C]"), Error);
}

TEST_CASE("embedding: NoGradGuard records no node") {
  Tensor w = Tensor::ones({3, 2}, true);
  const std::vector<int32_t> ids{0, 2};
  NoGradGuard guard;
  Tensor y = embedding(w, ids, {2});
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
}
