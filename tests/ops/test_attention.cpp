// scaled_dot_product_attention: gradients, masks, dropout, and a naive double reference.
#include <doctest/doctest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "qkv/runtime.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

namespace {

AttentionOptions opts(bool causal, Tensor pad = Tensor(), float dropout = 0.0f,
                      Rng* rng = nullptr) {
  AttentionOptions o;
  o.causal = causal;
  o.key_padding = std::move(pad);
  o.dropout = dropout;
  o.rng = rng;
  return o;
}

Tensor randn(Shape shape, Rng& rng, bool requires_grad = true) {
  return Tensor::randn(shape, rng, 1.0f, requires_grad);
}

// Rows [start, start + len) of x [B, T, C], as a new leaf.
Tensor rows(const Tensor& x, int64_t start, int64_t len) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  std::vector<float> out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = start; t < start + len; ++t)
      for (int64_t c = 0; c < C; ++c) out.push_back(x.data()[(b * T + t) * C + c]);
  return Tensor::from_vector({B, len, C}, out);
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, double eps) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(eps));
}

// The definition, in double: per head, masked scores, softmax, weighted sum of values.
std::vector<double> reference(const Tensor& q, const Tensor& k, const Tensor& v, int64_t NH,
                              bool causal, const Tensor& pad) {
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), C = q.size(2), HS = C / NH;
  std::vector<double> out(static_cast<size_t>(B * Tq * C), 0.0);
  auto Q = [&](int64_t b, int64_t t, int64_t c) { return double(q.data()[(b * Tq + t) * C + c]); };
  auto K = [&](int64_t b, int64_t t, int64_t c) { return double(k.data()[(b * Tk + t) * C + c]); };
  auto V = [&](int64_t b, int64_t t, int64_t c) { return double(v.data()[(b * Tk + t) * C + c]); };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        std::vector<double> w(static_cast<size_t>(Tk), 0.0);
        double total = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          const bool masked = (causal && j > i + Tk - Tq) ||
                              (pad.defined() && pad.data()[b * Tk + j] != 0.0f);
          if (masked) continue;
          double s = 0;
          for (int64_t c = h * HS; c < (h + 1) * HS; ++c) s += Q(b, i, c) * K(b, j, c);
          w[j] = std::exp(s / std::sqrt(double(HS)));
          total += w[j];
        }
        for (int64_t j = 0; j < Tk; ++j)
          for (int64_t c = h * HS; c < (h + 1) * HS; ++c)
            if (total > 0) out[(b * Tq + i) * C + c] += w[j] / total * V(b, j, c);
      }
  return out;
}

}  // namespace

TEST_CASE("scaled_dot_product_attention: gradients match finite differences") {
  Rng rng(11);
  SUBCASE("self-attention, no mask") {
    Tensor q = randn({2, 4, 3}, rng), k = randn({2, 4, 3}, rng), v = randn({2, 4, 3}, rng);
    check_gradients("sdpa", [&] { return scaled_dot_product_attention(q, k, v, 1); }, {q, k, v});
  }
  SUBCASE("causal") {
    Tensor q = randn({2, 4, 3}, rng), k = randn({2, 4, 3}, rng), v = randn({2, 4, 3}, rng);
    AttentionOptions o = opts(true);
    check_gradients("sdpa causal", [&] { return scaled_dot_product_attention(q, k, v, 1, o); },
                    {q, k, v});
  }
  SUBCASE("key padding on some batch rows") {
    Tensor q = randn({3, 4, 3}, rng), k = randn({3, 4, 3}, rng), v = randn({3, 4, 3}, rng);
    AttentionOptions o = opts(false, Tensor::from_vector({3, 4}, {0, 0, 0, 0,  //
                                                                      0, 0, 1, 1,  //
                                                                      1, 0, 0, 1}));
    check_gradients("sdpa padding", [&] { return scaled_dot_product_attention(q, k, v, 1, o); },
                    {q, k, v});
  }
  SUBCASE("causal and padding, including a query that sees no key") {
    Tensor q = randn({2, 4, 3}, rng), k = randn({2, 4, 3}, rng), v = randn({2, 4, 3}, rng);
    AttentionOptions o = opts(true, Tensor::from_vector({2, 4}, {0, 0, 0, 1, 1, 0, 0, 0}));
    check_gradients("sdpa causal+padding",
                    [&] { return scaled_dot_product_attention(q, k, v, 1, o); }, {q, k, v});
  }
  SUBCASE("cross-attention Tq != Tk with padding") {
    Tensor q = randn({2, 3, 4}, rng), k = randn({2, 5, 4}, rng), v = randn({2, 5, 4}, rng);
    AttentionOptions o = opts(false, Tensor::from_vector({2, 5}, {0, 0, 0, 0, 0, 0, 0, 0, 1, 1}));
    check_gradients("sdpa cross", [&] { return scaled_dot_product_attention(q, k, v, 2, o); },
                    {q, k, v});
  }
  SUBCASE("causal with Tq < Tk (decoding against a cache)") {
    Tensor q = randn({2, 2, 3}, rng), k = randn({2, 5, 3}, rng), v = randn({2, 5, 3}, rng);
    AttentionOptions o = opts(true);
    check_gradients("sdpa cache", [&] { return scaled_dot_product_attention(q, k, v, 1, o); },
                    {q, k, v});
  }
  SUBCASE("dropout on the probabilities") {
    Tensor q = randn({2, 4, 4}, rng), k = randn({2, 4, 4}, rng), v = randn({2, 4, 4}, rng);
    check_gradients("sdpa dropout",
                    [&] {
                      Rng drop_rng(5);  // the same mask on every call
                      AttentionOptions o = opts(true, Tensor(), 0.3f, &drop_rng);
                      return scaled_dot_product_attention(q, k, v, 2, o);
                    },
                    {q, k, v});
  }
  SUBCASE("two heads, causal") {
    Tensor q = randn({2, 3, 4}, rng), k = randn({2, 3, 4}, rng), v = randn({2, 3, 4}, rng);
    AttentionOptions o = opts(true);
    check_gradients("sdpa 2 heads", [&] { return scaled_dot_product_attention(q, k, v, 2, o); },
                    {q, k, v});
  }
  SUBCASE("only some inputs require grad") {
    Tensor q = randn({1, 3, 4}, rng, false), k = randn({1, 3, 4}, rng, false);
    Tensor v = randn({1, 3, 4}, rng);
    check_gradients("sdpa v only", [&] { return scaled_dot_product_attention(q, k, v, 2); }, {v});
    Tensor q2 = randn({1, 3, 4}, rng), v2 = randn({1, 3, 4}, rng, false);
    check_gradients("sdpa q only", [&] { return scaled_dot_product_attention(q2, k, v2, 2); },
                    {q2});
  }
}

TEST_CASE("scaled_dot_product_attention: one tensor as q, k and v gets all three gradients") {
  Rng rng(3);
  Tensor x = randn({2, 4, 4}, rng);
  AttentionOptions o = opts(true);
  check_gradients("sdpa self", [&] { return scaled_dot_product_attention(x, x, x, 2, o); }, {x});
}

TEST_CASE("scaled_dot_product_attention: a hand-computed case") {
  // One head, HS = 1 (scale 1): scores q_i·k_j, softmax over keys, weighted sum of values.
  Tensor q = Tensor::from_vector({1, 2, 1}, {1, 2});
  Tensor k = Tensor::from_vector({1, 2, 1}, {0, 1});
  Tensor v = Tensor::from_vector({1, 2, 1}, {10, 20});
  const double e = std::exp(1.0), e2 = std::exp(2.0);
  Tensor full = scaled_dot_product_attention(q, k, v, 1);
  CHECK(full.at({0, 0, 0}) == doctest::Approx((10 + 20 * e) / (1 + e)));
  CHECK(full.at({0, 1, 0}) == doctest::Approx((10 + 20 * e2) / (1 + e2)));
  Tensor causal = scaled_dot_product_attention(q, k, v, 1, opts(true));
  CHECK(causal.at({0, 0, 0}) == doctest::Approx(10));
  CHECK(causal.at({0, 1, 0}) == doctest::Approx((10 + 20 * e2) / (1 + e2)));
  // HS = 2 scales scores by 1/sqrt(2): q = (1, 1), k0 = (0, 0), k1 = (1, 1) gives scores 0, √2.
  Tensor q2 = Tensor::from_vector({1, 1, 2}, {1, 1});
  Tensor k2 = Tensor::from_vector({1, 2, 2}, {0, 0, 1, 1});
  Tensor v2 = Tensor::from_vector({1, 2, 2}, {1, 0, 0, 1});
  const double w1 = std::exp(std::sqrt(2.0)) / (1 + std::exp(std::sqrt(2.0)));
  Tensor out2 = scaled_dot_product_attention(q2, k2, v2, 1);
  CHECK(out2.at({0, 0, 0}) == doctest::Approx(1 - w1));
  CHECK(out2.at({0, 0, 1}) == doctest::Approx(w1));
}

TEST_CASE("scaled_dot_product_attention: matches a naive double reference") {
  Rng rng(21);
  SUBCASE("self-attention, two heads, causal and padding") {
    Tensor q = randn({3, 6, 8}, rng), k = randn({3, 6, 8}, rng), v = randn({3, 6, 8}, rng);
    std::vector<float> p(18, 0.0f);
    p[5] = p[6 + 4] = p[6 + 5] = p[12] = 1;
    Tensor pad = Tensor::from_vector({3, 6}, p);
    const auto want = reference(q, k, v, 2, true, pad);
    check_close(scaled_dot_product_attention(q, k, v, 2, opts(true, pad)).to_vector(), want, 1e-5);
  }
  SUBCASE("cross-attention, three heads, padding") {
    Tensor q = randn({2, 3, 6}, rng), k = randn({2, 7, 6}, rng), v = randn({2, 7, 6}, rng);
    std::vector<float> p(14, 0.0f);
    p[6] = p[7 + 1] = 1;
    Tensor pad = Tensor::from_vector({2, 7}, p);
    const auto want = reference(q, k, v, 3, false, pad);
    check_close(scaled_dot_product_attention(q, k, v, 3, opts(false, pad)).to_vector(), want, 1e-5);
  }
}

TEST_CASE("scaled_dot_product_attention: long sequences, computed in blocks of query rows") {
  // Over 64 query rows a head is computed in row blocks that skip the causally masked keys;
  // the partial last block, and Tq != Tk in both directions, must still give the definition.
  Rng rng(41);
  struct Case {
    int64_t Tq, Tk;
  };
  for (const Case c : {Case{150, 150}, Case{70, 100}, Case{130, 50}}) {
    CAPTURE(c.Tq);
    CAPTURE(c.Tk);
    Tensor q = randn({2, c.Tq, 4}, rng), k = randn({2, c.Tk, 4}, rng), v = randn({2, c.Tk, 4}, rng);
    std::vector<float> p(static_cast<size_t>(2 * c.Tk), 0.0f);
    p[3] = p[static_cast<size_t>(c.Tk + 7)] = 1;
    Tensor pad = Tensor::from_vector({2, c.Tk}, p);
    for (const bool causal : {true, false})
      check_close(scaled_dot_product_attention(q, k, v, 2, opts(causal, pad)).to_vector(),
                  reference(q, k, v, 2, causal, pad), 1e-4);
  }
  SUBCASE("gradients, causal, three row blocks") {
    Tensor q = randn({1, 130, 2}, rng), k = randn({1, 130, 2}, rng), v = randn({1, 130, 2}, rng);
    check_gradients("sdpa T=130", [&] { return scaled_dot_product_attention(q, k, v, 1, opts(true)); },
                    {q, k, v});
  }
  SUBCASE("gradients, causal, a first block of queries that see no key") {
    Tensor q = randn({1, 130, 2}, rng), k = randn({1, 50, 2}, rng), v = randn({1, 50, 2}, rng);
    check_gradients("sdpa Tq=130 Tk=50",
                    [&] { return scaled_dot_product_attention(q, k, v, 1, opts(true)); }, {q, k, v});
  }
  SUBCASE("gradients with dropout, packed") {
    Tensor x = randn({1, 100, 6}, rng);
    check_gradients("sdpa T=100 dropout",
                    [&] {
                      Rng drop_rng(5);
                      return scaled_dot_product_attention(x, x, x, 1,
                                                          opts(true, Tensor(), 0.2f, &drop_rng));
                    },
                    {x});
  }
}

TEST_CASE("scaled_dot_product_attention: a query that sees no key gives zeros and no gradient") {
  Rng rng(8);
  Tensor q = randn({2, 3, 4}, rng), k = randn({2, 3, 4}, rng), v = randn({2, 3, 4}, rng);
  // Batch row 1 pads every key.
  Tensor pad = Tensor::from_vector({2, 3}, {0, 0, 0, 1, 1, 1});
  Tensor out = scaled_dot_product_attention(q, k, v, 2, opts(false, pad));
  out.backward(Tensor::ones({2, 3, 4}));
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t c = 0; c < 4; ++c) {
      CHECK(out.at({1, t, c}) == 0.0f);
      CHECK(q.grad().at({1, t, c}) == 0.0f);
      CHECK(k.grad().at({1, t, c}) == 0.0f);
      CHECK(v.grad().at({1, t, c}) == 0.0f);
      CHECK(out.at({0, t, c}) != 0.0f);
    }
  // Causal with Tq > Tk: query i sees keys j <= i - 2, so the first two rows see none.
  Tensor q3 = randn({1, 3, 2}, rng), k1 = randn({1, 1, 2}, rng), v1 = randn({1, 1, 2}, rng);
  Tensor c = scaled_dot_product_attention(q3, k1, v1, 1, opts(true));
  CHECK(c.to_vector() == std::vector<float>{0, 0, 0, 0, v1.data()[0], v1.data()[1]});
}

TEST_CASE("scaled_dot_product_attention: the last causal row equals one query against all keys") {
  // This is what the KV cache relies on: decoding the newest positions alone against the
  // cached keys gives the rows the full causal pass gives.
  Rng rng(4);
  const int64_t T = 7;
  Tensor q = randn({2, T, 8}, rng, false), k = randn({2, T, 8}, rng, false);
  Tensor v = randn({2, T, 8}, rng, false);
  Tensor full = scaled_dot_product_attention(q, k, v, 2, opts(true));
  for (int64_t n : {1, 3}) {
    Tensor tail = scaled_dot_product_attention(rows(q, T - n, n), k, v, 2, opts(true));
    const auto want = rows(full, T - n, n).to_vector();
    check_close(tail.to_vector(), std::vector<double>(want.begin(), want.end()), 1e-6);
  }
}

TEST_CASE("scaled_dot_product_attention: dropout is seeded, thread-count independent, and fair") {
  Rng rng(2);
  Tensor q = randn({3, 8, 8}, rng), k = randn({3, 8, 8}, rng), v = randn({3, 8, 8}, rng);
  auto run = [&](uint64_t seed, int threads) {
    set_num_threads(threads);
    for (Tensor* t : {&q, &k, &v}) t->zero_grad();
    Rng drop(seed);
    Tensor out = scaled_dot_product_attention(q, k, v, 2, opts(false, Tensor(), 0.4f, &drop));
    out.backward(Tensor::ones(out.shape()));
    std::vector<float> all = out.to_vector();
    for (const Tensor* t : {&q, &k, &v})
      for (float g : t->grad().to_vector()) all.push_back(g);
    return all;
  };
  const auto one = run(9, 1), two = run(9, 2), other = run(10, 2);
  set_num_threads(0);
  CHECK(one == two);
  CHECK(one != other);
  Rng advanced(9);
  (void)scaled_dot_product_attention(q, k, v, 2, opts(false, Tensor(), 0.4f, &advanced));
  CHECK(advanced.state().state != Rng(9).state().state);
  // No rng (eval mode) means no dropout.
  Tensor eval = scaled_dot_product_attention(q, k, v, 2, opts(false, Tensor(), 0.4f));
  CHECK(eval.to_vector() == scaled_dot_product_attention(q, k, v, 2).to_vector());

  // One key and v = 1: each output is the kept-scale 1/(1-p) = 2 or 0, about half of each.
  Tensor q1 = Tensor::zeros({4, 64, 4}), k1 = Tensor::zeros({4, 1, 4});
  Tensor v1 = Tensor::ones({4, 1, 4});
  Rng drop(77);
  const auto out = scaled_dot_product_attention(q1, k1, v1, 4, opts(false, Tensor(), 0.5f, &drop))
                       .to_vector();
  int64_t zeros = 0;
  for (float x : out) {
    CHECK((x == 0.0f || x == 2.0f));
    zeros += x == 0.0f;
  }
  CHECK(zeros > 0.4 * out.size());
  CHECK(zeros < 0.6 * out.size());
}

TEST_CASE("scaled_dot_product_attention: NoGradGuard records no node and gives the same values") {
  Rng rng(6);
  Tensor q = randn({2, 4, 4}, rng), k = randn({2, 4, 4}, rng), v = randn({2, 4, 4}, rng);
  AttentionOptions o = opts(true);
  Tensor with_grad = scaled_dot_product_attention(q, k, v, 2, o);
  CHECK(with_grad.grad_fn() != nullptr);
  NoGradGuard guard;
  Tensor out = scaled_dot_product_attention(q, k, v, 2, o);
  CHECK(out.grad_fn() == nullptr);
  CHECK_FALSE(out.requires_grad());
  CHECK(out.to_vector() == with_grad.to_vector());
}

TEST_CASE("scaled_dot_product_attention: bad shapes and options are errors naming the op") {
  Rng rng(1);
  Tensor q = randn({2, 3, 6}, rng), k = randn({2, 5, 6}, rng), v = randn({2, 5, 6}, rng);
  auto sdpa = [](const Tensor& a, const Tensor& b, const Tensor& c, int64_t nh,
                 const AttentionOptions& o = {}) {
    return scaled_dot_product_attention(a, b, c, nh, o);
  };
  CHECK_THROWS_WITH_AS(sdpa(q, k, v, 4),
                       "scaled_dot_product_attention: C = 6 channels (q is [2, 3, 6]) are not "
                       "divisible by n_head = 4",
                       Error);
  CHECK_THROWS_WITH_AS(sdpa(q, k, v, 0), doctest::Contains("n_head = 0"), Error);
  CHECK_THROWS_WITH_AS(sdpa(q, k, randn({2, 4, 6}, rng), 2),
                       "scaled_dot_product_attention: q is [2, 3, 6], k is [2, 5, 6], v is "
                       "[2, 4, 6]; expected q [B, Tq, C] and k, v [B, Tk, C]",
                       Error);
  CHECK_THROWS_WITH_AS(sdpa(randn({3, 3, 6}, rng), k, v, 2),
                       doctest::Contains("q is [3, 3, 6], k is [2, 5, 6]"), Error);
  CHECK_THROWS_WITH_AS(sdpa(randn({2, 3, 4}, rng), k, v, 2),
                       doctest::Contains("expected q [B, Tq, C]"), Error);
  CHECK_THROWS_WITH_AS(sdpa(randn({6, 6}, rng), k, v, 2),
                       doctest::Contains("q is [6, 6]"), Error);
  CHECK_THROWS_WITH_AS(sdpa(q, k, v, 2, opts(false, Tensor::zeros({2, 3}))),
                       "scaled_dot_product_attention: key_padding is [2, 3], expected [B, Tk] = "
                       "[2, 5] for k [2, 5, 6]",
                       Error);
  Rng drop(1);
  CHECK_THROWS_WITH_AS(sdpa(q, k, v, 2, opts(false, Tensor(), 1.0f, &drop)),
                       "scaled_dot_product_attention: dropout must be in [0, 1), got 1", Error);
  CHECK_THROWS_WITH_AS(sdpa(q, Tensor(), v, 2), doctest::Contains("must all be defined"), Error);
  CHECK_THROWS_WITH_AS(sdpa(randn({2, 0, 6}, rng), k, v, 2), doctest::Contains("empty input"),
                       Error);
}

// ---- attention_probabilities ----

TEST_CASE("attention_probabilities: rows sum to 1, masks hold, and probs·v is the fused output") {
  struct Case {
    const char* name;
    int64_t Tq, Tk;
    bool causal, padded;
  };
  for (const Case& c : {Case{"self", 5, 5, false, false}, Case{"causal", 5, 5, true, false},
                        Case{"causal + padding", 5, 5, true, true},
                        Case{"cross + padding", 3, 6, false, true},
                        Case{"cached causal", 2, 6, true, false}}) {
    CAPTURE(c.name);
    const int64_t B = 2, NH = 2, C = 8, HS = C / NH;
    Rng rng(31);
    Tensor q = randn({B, c.Tq, C}, rng), k = randn({B, c.Tk, C}, rng), v = randn({B, c.Tk, C}, rng);
    std::vector<float> pad(size_t(B * c.Tk), 0.0f);
    if (c.padded) pad[size_t(c.Tk - 1)] = pad[size_t(2 * c.Tk - 2)] = pad[size_t(2 * c.Tk - 1)] = 1;
    AttentionOptions o = opts(c.causal, c.padded ? Tensor::from_vector({B, c.Tk}, pad) : Tensor());
    const Tensor P = attention_probabilities(q, k, NH, o);
    REQUIRE(P.shape() == Shape({B, NH, c.Tq, c.Tk}));
    CHECK(P.grad_fn() == nullptr);
    const Tensor out = scaled_dot_product_attention(q, k, v, NH, o);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < NH; ++h)
        for (int64_t i = 0; i < c.Tq; ++i) {
          const float* p = P.data() + ((b * NH + h) * c.Tq + i) * c.Tk;
          double sum = 0;
          for (int64_t j = 0; j < c.Tk; ++j) {
            const bool masked = (c.causal && j > i + c.Tk - c.Tq) || pad[size_t(b * c.Tk + j)];
            if (masked) CHECK(p[j] == 0.0f);
            CHECK(p[j] >= 0.0f);
            sum += p[j];
          }
          CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
          for (int64_t e = 0; e < HS; ++e) {
            double y = 0;
            for (int64_t j = 0; j < c.Tk; ++j) y += p[j] * v.data()[(b * c.Tk + j) * C + h * HS + e];
            CHECK(out.data()[(b * c.Tq + i) * C + h * HS + e] == doctest::Approx(y).epsilon(1e-5));
          }
        }
  }
}

TEST_CASE("attention_probabilities: a hand-computed case, and dropout is ignored") {
  // One head, HS = 1: scores q·k = [0, ln 3] for q = 1, k = [0, ln 3] -> softmax [1/4, 3/4].
  const Tensor q = Tensor::from_vector({1, 1, 1}, {1.0f});
  const Tensor k = Tensor::from_vector({1, 2, 1}, {0.0f, std::log(3.0f)});
  Rng rng(2);
  const Tensor P = attention_probabilities(q, k, 1, opts(false, Tensor(), 0.5f, &rng));
  check_close(P.to_vector(), {0.25, 0.75}, 1e-6);
}

TEST_CASE("attention_probabilities: bad shapes are errors naming the op") {
  Rng rng(1);
  CHECK_THROWS_WITH_AS(attention_probabilities(randn({2, 3, 6}, rng), randn({2, 5, 4}, rng), 2),
                       "attention_probabilities: q is [2, 3, 6], k is [2, 5, 4]; expected q "
                       "[B, Tq, C] and k [B, Tk, C]",
                       Error);
  CHECK_THROWS_WITH_AS(attention_probabilities(randn({2, 3, 6}, rng), randn({2, 5, 6}, rng), 4),
                       doctest::Contains("attention_probabilities: C = 6 channels"), Error);
}
