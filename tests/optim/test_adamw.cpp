#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "qkv/error.h"
#include "qkv/optim/adamw.h"
#include "qkv/optim/schedule.h"
#include "qkv/runtime.h"

using namespace qkv;
using namespace qkv::optim;

namespace {
void set_grad(const Tensor& p, std::vector<float> g) {
  p.zero_grad();
  p.backward(Tensor::from_vector(p.shape(), g));
}
}  // namespace

TEST_CASE("adamw: first step by hand, with bias correction") {
  // m = 0.05, v = 0.0025; corrected m/(sqrt(v)) = 0.5/0.5 = 1, so p moves by exactly lr.
  Tensor p = Tensor::from_vector({1}, {1.0f}, true);
  AdamW opt({{"p", p}}, {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 0, .weight_decay = 0});
  set_grad(p, {0.5f});
  opt.step(0.1f);
  CHECK(p.item() == doctest::Approx(0.9));
  CHECK(opt.step_count() == 1);
}

TEST_CASE("adamw: weight decay applies to rank >= 2 tensors only, unless decay_all") {
  Tensor w = Tensor::ones({2, 2}, true), b = Tensor::ones({2}, true);
  for (bool all : {false, true}) {
    std::fill_n(w.data(), 4, 1.0f);
    std::fill_n(b.data(), 2, 1.0f);
    AdamW opt({{"w", w}, {"b", b}}, {.weight_decay = 0.5f, .decay_all = all});
    set_grad(w, {0, 0, 0, 0});
    set_grad(b, {0, 0});
    opt.step(0.1f);  // zero grads: only the decay moves parameters
    CHECK(w.at({0, 0}) == doctest::Approx(1.0 - 0.1 * 0.5));
    CHECK(b.at({0}) == doctest::Approx(all ? 1.0 - 0.1 * 0.5 : 1.0));
  }
}

TEST_CASE("adamw: parameters without a grad are left alone") {
  Tensor p = Tensor::ones({3}, true);
  AdamW opt({{"p", p}}, {});
  opt.step(0.1f);
  CHECK(p.to_vector() == std::vector<float>{1, 1, 1});
}

TEST_CASE("adamw: state round-trips by name, so a restored optimizer continues identically") {
  Tensor p = Tensor::from_vector({2}, {1, 2}, true), q = Tensor::from_vector({2}, {1, 2}, true);
  AdamW a({{"p", p}}, {}), b({{"p", q}}, {});
  set_grad(p, {0.3f, -0.2f});
  a.step(0.01f);
  b.load_state(a.state(), a.step_count());
  std::copy_n(p.data(), 2, q.data());
  set_grad(p, {0.1f, 0.4f});
  set_grad(q, {0.1f, 0.4f});
  a.step(0.01f);
  b.step(0.01f);
  CHECK(p.to_vector() == q.to_vector());
}

TEST_CASE("adamw: loading state reports every missing, unexpected and mis-shaped entry") {
  Tensor p = Tensor::ones({2}, true);
  AdamW opt({{"p", p}}, {});
  const NamedTensors bad{{"m.p", Tensor::zeros({3})}, {"m.extra", Tensor::zeros({1})}};
  CHECK_THROWS_WITH_AS(opt.load_state(bad, 1),
                       "optimizer state: 'm.p' is [3], parameter expects [2]; missing 'v.p'; "
                       "unexpected 'm.extra'",
                       Error);
}

TEST_CASE("adamw: a refused state leaves the moments as they were") {
  Tensor p = Tensor::ones({2}, true);
  AdamW opt({{"p", p}}, {});
  const NamedTensors good{{"m.p", Tensor::full({2}, 5.0f)}, {"v.p", Tensor::full({2}, 7.0f)}};
  CHECK_THROWS_WITH_AS(opt.load_state(good, -1), "optimizer state: negative step count -1", Error);
  for (const auto& [name, t] : opt.state()) {
    CAPTURE(name);
    CHECK(t.to_vector() == std::vector<float>{0, 0});
  }
  CHECK(opt.step_count() == 0);
}

TEST_CASE("adamw: the clip folded into step equals clip_grad_norm then step, bit for bit") {
  // Several tensors, one larger than a thread's share, so the update's split crosses tensors.
  Rng rng(8);
  const std::vector<Shape> shapes{{300, 70}, {70}, {5, 3}, {40000}};
  for (const float max_norm : {1.0f, 1e6f}) {  // clipping, and a norm under the limit
    CAPTURE(max_norm);
    NamedTensors a, b;
    for (size_t k = 0; k < shapes.size(); ++k) {
      Tensor p = Tensor::randn(shapes[k], rng, 1.0f, true);
      const std::string name = fmt::format("p{}", k);
      a.emplace_back(name, p);
      b.emplace_back(name, Tensor::from_vector(p.shape(), p.to_vector(), true));
    }
    AdamW opt_a(a, {}), opt_b(b, {});
    for (int step = 0; step < 3; ++step) {
      for (size_t k = 0; k < shapes.size(); ++k) {
        const Tensor g = Tensor::randn(shapes[k], rng, 3.0f);
        a[k].second.zero_grad();
        a[k].second.backward(g);
        b[k].second.zero_grad();
        b[k].second.backward(g);
      }
      const float norm_a = clip_grad_norm(a, max_norm);
      opt_a.step(1e-2f);
      const float norm_b = grad_norm(b);
      opt_b.step(1e-2f, clip_factor(norm_b, max_norm));
      CHECK(norm_a == norm_b);
      for (size_t k = 0; k < shapes.size(); ++k) CHECK(a[k].second.to_vector() == b[k].second.to_vector());
    }
  }
}

TEST_CASE("adamw: a step gives the same bits on any thread count") {
  std::vector<std::vector<float>> results;
  for (const int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Rng rng(9);
    Tensor w = Tensor::randn({200, 100}, rng, 1.0f, true), b = Tensor::randn({7}, rng, 1.0f, true);
    AdamW opt({{"w", w}, {"b", b}}, {});
    w.backward(Tensor::randn(w.shape(), rng));
    b.backward(Tensor::randn(b.shape(), rng));
    opt.step(1e-2f, 0.5f);
    results.push_back(w.to_vector());
    results.back().insert(results.back().end(), b.data(), b.data() + b.numel());
  }
  set_num_threads(0);
  CHECK(results[0] == results[1]);
  CHECK(results[0] == results[2]);
}
