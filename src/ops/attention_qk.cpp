// The q/k transform of attention (ops/attention_qk.h), and the rotary tables it reads.
#include "ops/attention_qk.h"

#include <cmath>

#include "ops/vecmath.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {

Rotary rotary_table(int64_t positions, int64_t head_size, double base) {
  QKV_CHECK(positions > 0 && head_size > 0 && head_size % 2 == 0 && base > 0.0,
            "rotary_table: needs positions > 0, an even head size and base > 0; got {}, {}, {}",
            positions, head_size, base);
  const int64_t half = head_size / 2;
  Rotary r{Tensor::empty({positions, half}), Tensor::empty({positions, half})};
  for (int64_t i = 0; i < half; ++i) {
    const double freq = std::pow(base, -double(2 * i) / double(head_size));
    for (int64_t p = 0; p < positions; ++p) {
      r.cos.data()[p * half + i] = float(std::cos(double(p) * freq));
      r.sin.data()[p * half + i] = float(std::sin(double(p) * freq));
    }
  }
  return r;
}

namespace attention_qk {

// n = x·rstd with rstd = 1/sqrt(mean(x²) + eps) (when norm), then each pair turned:
//   (n_i, n_{i+HS/2}) -> (n_i·cos - n_{i+HS/2}·sin, n_{i+HS/2}·cos + n_i·sin).
template <class H>
void forward(H* x, float* rstd, const Rows& l, const Transform& t, int64_t r0, int64_t r1) {
  const int64_t HS = l.HS, half = HS / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t pos = l.pos0 + r % l.T;
    const float* c = t.cos ? t.cos + pos * half : nullptr;
    const float* s = t.sin ? t.sin + pos * half : nullptr;
    for (int64_t h = 0; h < l.NH; ++h) {
      H* v = x + r * l.ld + h * HS;
      float scale = 1.0f;
      if (t.norm) {
        const float ss = vecmath::lane_sum_of(HS, [v](int64_t i) {
          const float a = float(v[i]);
          return a * a;
        });
        scale = 1.0f / std::sqrt(ss / float(HS) + kEps);
        rstd[r * l.NH + h] = scale;
      }
      if (c) {
        for (int64_t i = 0; i < half; ++i) {
          const float a = float(v[i]) * scale, b = float(v[i + half]) * scale;
          v[i] = H(a * c[i] - b * s[i]);
          v[i + half] = H(b * c[i] + a * s[i]);
        }
      } else {
        for (int64_t i = 0; i < HS; ++i) v[i] = H(float(v[i]) * scale);
      }
    }
  }
}

// The rotation's transpose turns the gradient back: dn_i = d_i·cos + d_{i+HS/2}·sin,
// dn_{i+HS/2} = d_{i+HS/2}·cos - d_i·sin. The norm's: dx = rstd·(dn - n·mean(dn∘n)), with n
// (the normalised row) the forward's output turned back the same way.
template <class H>
void backward_head(float* d, const H* y, const float* rstd, const Rows& l, const Transform& t,
                   int64_t h, int64_t r0, int64_t r1) {
  const int64_t HS = l.HS, half = HS / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t pos = l.pos0 + r % l.T;
    const float* c = t.cos ? t.cos + pos * half : nullptr;
    const float* s = t.sin ? t.sin + pos * half : nullptr;
    float* dv = d + r * l.ld + h * HS;
    const H* yv = y + r * l.ld + h * HS;
    if (c)
      for (int64_t i = 0; i < half; ++i) {
        const float d1 = dv[i], d2 = dv[i + half];
        dv[i] = d1 * c[i] + d2 * s[i];
        dv[i + half] = d2 * c[i] - d1 * s[i];
      }
    if (!t.norm) continue;
    auto n = [&](int64_t i) {
      if (!c) return float(yv[i]);
      const int64_t j = i < half ? i : i - half;
      const float y1 = float(yv[j]), y2 = float(yv[j + half]);
      return i < half ? y1 * c[j] + y2 * s[j] : y2 * c[j] - y1 * s[j];
    };
    const float mean = vecmath::lane_sum_of(HS, [&](int64_t i) { return dv[i] * n(i); }) / float(HS);
    const float rs = rstd[r * l.NH + h];
    for (int64_t i = 0; i < HS; ++i) dv[i] = rs * (dv[i] - n(i) * mean);
  }
}

template void forward(float*, float*, const Rows&, const Transform&, int64_t, int64_t);
template void forward(bf16*, float*, const Rows&, const Transform&, int64_t, int64_t);
template void backward_head(float*, const float*, const float*, const Rows&, const Transform&,
                            int64_t, int64_t, int64_t);
template void backward_head(float*, const bf16*, const float*, const Rows&, const Transform&,
                            int64_t, int64_t, int64_t);

}  // namespace attention_qk
}  // namespace qkv
