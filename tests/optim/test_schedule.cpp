#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "qkv/optim/schedule.h"
#include "qkv/runtime.h"

using namespace qkv;
using namespace qkv::optim;

TEST_CASE("schedule: warmup, cosine decay and floor match nanoGPT's get_lr") {
  const ScheduleConfig c{.lr = 1e-3f, .min_lr = 1e-4f, .decay = Decay::cosine,
                         .warmup_iters = 100, .lr_decay_iters = 2000};
  CHECK(lr_at(0, c) == doctest::Approx(1e-3 * 1 / 101.0));
  CHECK(lr_at(99, c) == doctest::Approx(1e-3 * 100 / 101.0));
  CHECK(lr_at(100, c) == doctest::Approx(1e-3));
  CHECK(lr_at(1050, c) == doctest::Approx(1e-4 + 0.5 * (1e-3 - 1e-4)));  // halfway: cos = 0
  CHECK(lr_at(2000, c) == doctest::Approx(1e-4));
  CHECK(lr_at(5000, c) == doctest::Approx(1e-4));
  for (int64_t it = 101; it <= 2000; ++it) CHECK(lr_at(it, c) <= lr_at(it - 1, c));
}

TEST_CASE("schedule: constant decay keeps lr after warmup") {
  const ScheduleConfig c{.lr = 3e-4f, .min_lr = 0, .decay = Decay::constant, .warmup_iters = 10,
                         .lr_decay_iters = 100};
  CHECK(lr_at(4, c) == doctest::Approx(3e-4 * 5 / 11.0));
  CHECK(lr_at(10, c) == doctest::Approx(3e-4));
  CHECK(lr_at(1000, c) == doctest::Approx(3e-4));
}

TEST_CASE("schedule: wsd warms up, holds lr, then falls in a straight line to min_lr") {
  // bench/ref_optim.py's lr_at with warmup_iters 10, lr_decay_iters 100, decay_fraction 0.2:
  // the decay starts at 100 - 0.2 * 100 = 80.
  const ScheduleConfig c{.lr = 1e-3f, .min_lr = 1e-4f, .decay = Decay::wsd, .warmup_iters = 10,
                         .lr_decay_iters = 100, .decay_fraction = 0.2};
  CHECK(lr_at(0, c) == doctest::Approx(1e-3 / 11.0));
  CHECK(lr_at(9, c) == doctest::Approx(1e-3 * 10 / 11.0));
  CHECK(lr_at(10, c) == 1e-3f);  // the stable phase is lr itself, not a value near it
  CHECK(lr_at(79, c) == 1e-3f);
  CHECK(lr_at(80, c) == 1e-3f);  // the decay's first step: ratio 0
  CHECK(lr_at(81, c) == doctest::Approx(1e-3 - 0.05 * 9e-4));
  CHECK(lr_at(90, c) == doctest::Approx(5.5e-4));
  CHECK(lr_at(100, c) == doctest::Approx(1e-4));
  CHECK(lr_at(101, c) == 1e-4f);
  CHECK(lr_at(100000, c) == 1e-4f);
  for (int64_t it = 81; it <= 100; ++it) CHECK(lr_at(it, c) < lr_at(it - 1, c));
}

TEST_CASE("schedule: wsd at decay_fraction 1 decays over the whole run, after warmup") {
  const ScheduleConfig c{.lr = 1.0f, .min_lr = 0.0f, .decay = Decay::wsd, .warmup_iters = 0,
                         .lr_decay_iters = 50, .decay_fraction = 1.0};
  CHECK(lr_at(0, c) == 1.0f);
  CHECK(lr_at(25, c) == doctest::Approx(0.5));
  CHECK(lr_at(50, c) == 0.0f);
  // A fraction whose start is not a whole step: start = 10 - 0.25 * 10 = 7.5.
  const ScheduleConfig q{.lr = 1.0f, .min_lr = 0.0f, .decay = Decay::wsd, .warmup_iters = 0,
                         .lr_decay_iters = 10, .decay_fraction = 0.25};
  CHECK(lr_at(7, q) == 1.0f);
  CHECK(lr_at(8, q) == doctest::Approx(0.8));  // (8 - 7.5) / 2.5 of the way
  // lr_decay_iters 0: the only step left of the decay is its end.
  const ScheduleConfig z{.lr = 1.0f, .min_lr = 0.25f, .decay = Decay::wsd, .warmup_iters = 0,
                         .lr_decay_iters = 0, .decay_fraction = 0.2};
  CHECK(lr_at(0, z) == 0.25f);
}

TEST_CASE("clip_grad_norm: scales grads to the max norm and returns the norm before") {
  Tensor a = Tensor::zeros({2}, true), b = Tensor::zeros({1}, true);
  a.backward(Tensor::from_vector({2}, {3, 0}));
  b.backward(Tensor::from_vector({1}, {4}));
  const NamedTensors params{{"a", a}, {"b", b}};
  CHECK(clip_grad_norm(params, 10.0f) == doctest::Approx(5.0));
  CHECK(a.grad().to_vector() == std::vector<float>{3, 0});  // under the limit: untouched
  CHECK(clip_grad_norm(params, 1.0f) == doctest::Approx(5.0));
  CHECK(a.grad().at({0}) == doctest::Approx(0.6));
  CHECK(b.grad().at({0}) == doctest::Approx(0.8));
  CHECK(clip_grad_norm(params, 1.0f) == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("grad_norm: the norm of every grad, unchanged grads, the same on any thread count") {
  Tensor a = Tensor::zeros({2}, true), b = Tensor::zeros({1}, true);
  a.backward(Tensor::from_vector({2}, {3, 0}));
  b.backward(Tensor::from_vector({1}, {4}));
  const NamedTensors params{{"a", a}, {"b", b}};
  CHECK(grad_norm(params) == 5.0f);
  CHECK(a.grad().to_vector() == std::vector<float>{3, 0});
  CHECK(clip_factor(5.0f, 10.0f) == 1.0f);
  CHECK(clip_factor(5.0f, 1.0f) == doctest::Approx(0.2));
  CHECK(clip_factor(5.0f, 0.0f) == 1.0f);  // max_norm 0 turns clipping off
  // Many blocks of the norm's split: the same float whatever the threads.
  Rng rng(3);
  Tensor big = Tensor::zeros({100003}, true);
  big.backward(Tensor::randn({100003}, rng));
  const NamedTensors many{{"a", a}, {"big", big}};
  double want = 9;  // a: 3² + 0²
  for (float g : big.grad().to_vector()) want += double(g) * g;
  std::vector<float> norms;
  for (const int threads : {1, 2, 3}) {
    set_num_threads(threads);
    norms.push_back(grad_norm(many));
  }
  set_num_threads(0);
  CHECK(norms[0] == doctest::Approx(std::sqrt(want)).epsilon(1e-6));
  CHECK(norms[0] == norms[1]);
  CHECK(norms[0] == norms[2]);
}
