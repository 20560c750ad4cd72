// Tensor handles, factories, element access and printing.
#include "qkv/tensor.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <set>

#include "qkv/allocator.h"
#include "qkv/error.h"

namespace qkv {

Shape::Shape(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims) push_back(d);
}

void Shape::push_back(int64_t d) {
  QKV_CHECK(rank_ < kMaxRank, "shape: more than {} dimensions", kMaxRank);
  QKV_CHECK(d >= 0, "shape: negative extent {}", d);
  dims_[rank_++] = d;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i)
    QKV_CHECK(!__builtin_mul_overflow(n, dims_[i], &n),
              "shape {} has more elements than a 64-bit count holds; lower the sizes that make it",
              str());
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
  return s + "]";
}

bool operator==(const Shape& a, const Shape& b) {
  return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
}

Storage::Storage(int64_t n) : data(allocate_floats(n)), numel(n) {}
Storage::~Storage() { release_floats(data, numel); }

Tensor Tensor::empty(Shape shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape.numel());
  impl->shape = shape;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(Shape shape, float value, bool requires_grad) {
  Tensor t = empty(shape);
  std::fill_n(t.data(), t.numel(), value);
  return t.set_requires_grad(requires_grad);
}

Tensor Tensor::zeros(Shape shape, bool requires_grad) { return full(shape, 0.0f, requires_grad); }
Tensor Tensor::ones(Shape shape, bool requires_grad) { return full(shape, 1.0f, requires_grad); }

Tensor Tensor::from_vector(Shape shape, const std::vector<float>& values, bool requires_grad) {
  QKV_CHECK(static_cast<int64_t>(values.size()) == shape.numel(),
            "from_vector: shape {} holds {} elements, got {} values", shape, shape.numel(),
            values.size());
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t.set_requires_grad(requires_grad);
}

Tensor Tensor::randn(Shape shape, Rng& rng, float stddev, bool requires_grad) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = stddev * rng.normal();
  return t.set_requires_grad(requires_grad);
}

Tensor Tensor::uniform(Shape shape, Rng& rng, float lo, float hi, bool requires_grad) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = lo + (hi - lo) * rng.uniform();
  return t.set_requires_grad(requires_grad);
}

int64_t Tensor::size(int dim) const {
  const int r = rank();
  QKV_CHECK(dim >= -r && dim < r, "size: dim {} out of range for shape {}", dim, shape());
  return shape()[dim < 0 ? dim + r : dim];
}

float Tensor::item() const {
  QKV_CHECK(numel() == 1, "item: tensor of shape {} has {} elements, not 1", shape(), numel());
  return data()[0];
}

float Tensor::at(std::initializer_list<int64_t> index) const {
  QKV_CHECK(static_cast<int>(index.size()) == rank(), "at: {} indices for shape {}", index.size(),
            shape());
  int64_t flat = 0, d = 0;
  for (int64_t i : index) {
    QKV_CHECK(i >= 0 && i < shape()[d], "at: index {} out of range for dim {} of shape {}", i, d,
              shape());
    flat = flat * shape()[d++] + i;
  }
  return data()[flat];
}

std::vector<float> Tensor::to_vector() const { return {data(), data() + numel()}; }

void Tensor::copy_from(const Tensor& src) {
  QKV_CHECK(src.shape() == shape(), "copy_from: a tensor of shape {} into one of shape {}",
            src.shape(), shape());
  std::copy_n(src.data(), numel(), data());
}

Tensor& Tensor::set_requires_grad(bool on) {
  QKV_CHECK(!impl_->grad_fn, "set_requires_grad: only leaf tensors can change requires_grad");
  impl_->requires_grad = on;
  return *this;
}

float* Tensor::grad_data() const { return impl_->grad ? impl_->grad->data : nullptr; }

Tensor Tensor::grad() const {
  if (!impl_->grad) return Tensor();
  auto g = std::make_shared<TensorImpl>();
  g->storage = impl_->grad;
  g->shape = impl_->shape;
  return Tensor(std::move(g));
}

void Tensor::zero_grad() const { impl_->grad.reset(); }

void Tensor::set_grad(const Tensor& g) const {
  QKV_CHECK(g.shape() == shape() && g.impl()->offset == 0 && g.impl()->storage->numel == numel(),
            "set_grad: a gradient of shape {} for a tensor of shape {}, or a view of a larger "
            "storage",
            g.shape(), shape());
  impl_->grad = g.impl()->storage;
}

Tensor Tensor::detach() const {
  auto d = std::make_shared<TensorImpl>();
  d->storage = impl_->storage;
  d->offset = impl_->offset;
  d->shape = impl_->shape;
  d->name = impl_->name;
  return Tensor(std::move(d));
}

Tensor& Tensor::set_name(std::string name) {
  impl_->name = std::move(name);
  return *this;
}

std::vector<std::string> named_problems(const NamedTensors& given, const NamedTensors& into,
                                        std::string_view expecter) {
  std::map<std::string, const Tensor*> by_name;
  std::vector<std::string> problems;
  for (const auto& [name, t] : given)
    if (!by_name.emplace(name, &t).second) problems.push_back(fmt::format("duplicate '{}'", name));
  std::set<std::string> expected;
  for (const auto& [name, t] : into) {
    expected.insert(name);
    const auto it = by_name.find(name);
    if (it == by_name.end())
      problems.push_back(fmt::format("missing '{}'", name));
    else if (!(it->second->shape() == t.shape()))
      problems.push_back(fmt::format("'{}' is {}, {} expects {}", name, it->second->shape(),
                                     expecter, t.shape()));
  }
  for (const auto& [name, t] : given)
    if (!expected.contains(name)) problems.push_back(fmt::format("unexpected '{}'", name));
  return problems;
}

void copy_named(const NamedTensors& given, const NamedTensors& into, std::string_view what,
                std::string_view expecter) {
  const std::vector<std::string> problems = named_problems(given, into, expecter);
  QKV_CHECK(problems.empty(), "{}: {}", what, fmt::join(problems, "; "));
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : given) by_name.emplace(name, &t);
  for (auto [name, t] : into) t.copy_from(*by_name.at(name));
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  os << "tensor(" << t.shape().str();
  if (!t.name().empty()) os << ", '" << t.name() << "'";
  if (t.requires_grad()) os << ", requires_grad";
  os << ") [";
  const int64_t n = t.numel(), shown = std::min<int64_t>(n, 8);
  for (int64_t i = 0; i < shown; ++i) os << (i ? ", " : "") << t.data()[i];
  if (n > shown) os << ", ... (" << n << " values)";
  return os << "]";
}

}  // namespace qkv
