// Finite-difference gradient checks shared by every op test.
//
// check_gradients reduces the op's output to a scalar L = Σ out·W through fixed random weights W
// (not a plain sum, so a permuted or mis-broadcast gradient cannot pass), gets the analytic
// gradient by seeding backward with W, and compares every element of every input with a central
// difference of L computed in double. The inputs must be leaf tensors that require grad.
//
// Default tolerances: eps = 1e-3 and |analytic - numeric| <= atol + rtol·|numeric| with
// atol = rtol = 5e-3. Why: the forward runs in float32, so L carries a rounding error of about
// 1e-7·|L|, which the division by 2·eps magnifies to ~1e-4..1e-3 for the small inputs used here;
// the truncation error of the central difference is O(eps²) ≈ 1e-6. A wrong gradient is off by
// O(1). Ops with kinks (relu) or sharp curvature override eps/atol/rtol and say why.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "qkv/autograd.h"
#include "qkv/tensor.h"

namespace qkv::testing {

struct GradcheckOptions {
  double eps = 1e-3;
  double atol = 5e-3;
  double rtol = 5e-3;
  bool four_point = false;  // 4-point estimator (error O(eps^4)) for softmax-like ops
};

inline double weighted_sum(const Tensor& out, const Tensor& w) {
  double s = 0;
  for (int64_t i = 0; i < out.numel(); ++i) s += double(out.data()[i]) * double(w.data()[i]);
  return s;
}

inline void check_gradients(const std::string& op, const std::function<Tensor()>& fn,
                            std::vector<Tensor> inputs, GradcheckOptions opt = {}) {
  for (Tensor& x : inputs) {
    REQUIRE_MESSAGE(x.requires_grad(), op << ": gradcheck input does not require grad");
    x.zero_grad();
  }
  Tensor out = fn();
  Rng rng(1234);
  Tensor w = Tensor::randn(out.shape(), rng);
  REQUIRE_MESSAGE(out.requires_grad(), op << ": output does not require grad");
  out.backward(w);

  auto loss_at = [&] {
    NoGradGuard no_grad;
    return weighted_sum(fn(), w);
  };
  for (size_t n = 0; n < inputs.size(); ++n) {
    Tensor& x = inputs[n];
    REQUIRE_MESSAGE(x.grad().defined(), op << ": input " << n << " received no gradient");
    const std::vector<float> analytic = x.grad().to_vector();
    float* p = x.data();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float saved = p[i];
      auto at = [&](double delta) {
        p[i] = static_cast<float>(saved + delta);
        const double l = loss_at();
        p[i] = saved;
        return l;
      };
      const double h = opt.eps;
      const double numeric =
          opt.four_point
              ? (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
              : (at(h) - at(-h)) / (2 * h);
      const double a = analytic[i];
      const bool ok = std::abs(a - numeric) <= opt.atol + opt.rtol * std::abs(numeric);
      if (!ok) {
        FAIL_CHECK(op << ": input " << n << " element " << i << ": analytic " << a
                      << " vs numeric " << numeric);
        return;  // one report per check keeps the log readable
      }
    }
  }
}

}  // namespace qkv::testing
