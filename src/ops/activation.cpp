// Activations: exp, log, tanh, sigmoid, relu and gelu, each a flat loop over x: [n] -> y: [n].
#include <cmath>
#include <numbers>

#include "ops/pointwise.h"
#include "ops/vecmath.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

// y = e^x
void exp_forward(float* y, const float* x, int64_t n) {
  pointwise(n, [=](int64_t i) { y[i] = std::exp(x[i]); });
}
// dx += dy · y   (from the saved output)
void exp_backward(GradOut dx, const float* dy, const float* y, int64_t n) {
  accumulate(dx, n, [=](int64_t i) { return dy[i] * y[i]; });
}

// y = ln x
void log_forward(float* y, const float* x, int64_t n) {
  pointwise(n, [=](int64_t i) { y[i] = std::log(x[i]); });
}
// dx += dy / x
void log_backward(GradOut dx, const float* dy, const float* x, int64_t n) {
  accumulate(dx, n, [=](int64_t i) { return dy[i] / x[i]; });
}

// y = tanh x
void tanh_forward(float* y, const float* x, int64_t n) {
  pointwise(n, [=](int64_t i) { y[i] = std::tanh(x[i]); });
}
// dx += dy · (1 - y²)   (from the saved output)
void tanh_backward(GradOut dx, const float* dy, const float* y, int64_t n) {
  accumulate(dx, n, [=](int64_t i) { return dy[i] * (1.0f - y[i] * y[i]); });
}

// y = 1 / (1 + e^-x), written so that e^|x| never overflows to inf/inf for very negative x.
void sigmoid_forward(float* y, const float* x, int64_t n) {
  pointwise(n, [=](int64_t i) {
    const float e = std::exp(-std::abs(x[i]));
    y[i] = x[i] >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
  });
}
// dx += dy · y · (1 - y)   (from the saved output)
void sigmoid_backward(GradOut dx, const float* dy, const float* y, int64_t n) {
  accumulate(dx, n, [=](int64_t i) { return dy[i] * y[i] * (1.0f - y[i]); });
}

// y = max(x, 0)
void relu_forward(float* y, const float* x, int64_t n) {
  pointwise(n, [=](int64_t i) { y[i] = x[i] > 0 ? x[i] : 0.0f; });
}
// dx += dy · [x > 0]   (0 at x = 0, as in PyTorch)
void relu_backward(GradOut dx, const float* dy, const float* x, int64_t n) {
  accumulate(dx, n, [=](int64_t i) { return x[i] > 0 ? dy[i] : 0.0f; });
}

constexpr float kInvSqrt2 = static_cast<float>(1.0 / std::numbers::sqrt2);
constexpr float kInvSqrt2Pi = static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
constexpr float kSqrt2OverPi = static_cast<float>(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);
constexpr float kGeluCubic = 0.044715f;

// y = x · Φ(x) = 0.5 x (1 + erf(x / √2))
void gelu_erf_forward(float* y, const float* x, int64_t n) {
  pointwise(n, [=](int64_t i) { y[i] = 0.5f * x[i] * (1.0f + vecmath::erf(x[i] * kInvSqrt2)); });
}
// dx += dy · (Φ(x) + x φ(x)),  φ(x) = e^(-x²/2) / √(2π); erf(x/√2) needs the same e^(-x²/2).
void gelu_erf_backward(GradOut dx, const float* dy, const float* x, int64_t n) {
  accumulate(dx, n, [=](int64_t i) {
    const float e = vecmath::exp(-0.5f * x[i] * x[i]);
    const float cdf = 0.5f * (1.0f + vecmath::erf_with_exp(x[i] * kInvSqrt2, e));
    return dy[i] * (cdf + x[i] * kInvSqrt2Pi * e);
  });
}

// y = 0.5 x (1 + tanh u),  u = √(2/π) (x + 0.044715 x³)
void gelu_tanh_forward(float* y, const float* x, int64_t n) {
  pointwise(n, [=](int64_t i) {
    const float u = kSqrt2OverPi * (x[i] + kGeluCubic * x[i] * x[i] * x[i]);
    y[i] = 0.5f * x[i] * (1.0f + std::tanh(u));
  });
}
// dx += dy · (0.5 (1 + tanh u) + 0.5 x (1 - tanh² u) · √(2/π) (1 + 3·0.044715 x²))
void gelu_tanh_backward(GradOut dx, const float* dy, const float* x, int64_t n) {
  accumulate(dx, n, [=](int64_t i) {
    const float x2 = x[i] * x[i];
    const float t = std::tanh(kSqrt2OverPi * (x[i] + kGeluCubic * x2 * x[i]));
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x2);
    return dy[i] * (0.5f * (1.0f + t) + 0.5f * x[i] * (1.0f - t * t) * du);
  });
}

using Forward = void (*)(float*, const float*, int64_t);
using Backward = void (*)(GradOut, const float*, const float*, int64_t);

// Runs forward and records backward(dx, dy, saved); saved is the output when from_output
// (exp, tanh, sigmoid), else the input.
Tensor unary(const char* op, const Tensor& x, Forward forward, Backward backward,
             bool from_output) {
  Tensor y = Tensor::empty(x.shape());
  forward(y.data(), x.data(), x.numel());
  record(y, op, {x}, [backward, saved = from_output ? y.detach() : x](const float* dy, GradOuts g) {
    if (g[0]) backward(g[0], dy, saved.data(), saved.numel());
  });
  return y;
}

}  // namespace

Tensor exp(const Tensor& x) { return unary("exp", x, exp_forward, exp_backward, true); }
Tensor log(const Tensor& x) { return unary("log", x, log_forward, log_backward, false); }
Tensor tanh(const Tensor& x) { return unary("tanh", x, tanh_forward, tanh_backward, true); }
Tensor sigmoid(const Tensor& x) {
  return unary("sigmoid", x, sigmoid_forward, sigmoid_backward, true);
}
Tensor relu(const Tensor& x) { return unary("relu", x, relu_forward, relu_backward, false); }

Tensor gelu(const Tensor& x, GeluApprox approx) {
  if (approx == GeluApprox::tanh)
    return unary("gelu", x, gelu_tanh_forward, gelu_tanh_backward, false);
  return unary("gelu", x, gelu_erf_forward, gelu_erf_backward, false);
}

}  // namespace qkv
