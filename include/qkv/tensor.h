// Tensor: a cheap handle (shared pointer) to float32, row-major, contiguous data of rank <= 4,
// plus the autograd fields. Copies of a handle share data; reshape/view share storage.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/rng.h"
#include "qkv/shape.h"

namespace qkv {

struct Node;

// One 64-byte-aligned float block from the caching allocator; returned to it on destruction.
struct Storage {
  explicit Storage(int64_t numel);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  float* data = nullptr;
  int64_t numel = 0;
  std::atomic<uint64_t> version = 0;  // moved on by every writer (Tensor::data)
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // first element of this view within storage
  Shape shape;
  bool requires_grad = false;
  std::shared_ptr<Storage> grad;  // same numel as shape, or null before any backward reaches it
  // A bf16 copy of the data, for parameters that bf16 GEMMs read (src/ops/bf16.h), and the
  // storage version it holds: remade on use once the version has moved on.
  std::shared_ptr<Storage> bf16;
  uint64_t bf16_version = 0;
  std::shared_ptr<Node> grad_fn;  // null for leaves and for results made without grad
  bool graph_released = false;    // grad_fn was dropped by backward(); a second pass is an error
  std::string name;               // parameters: "blocks.0.attn.qkv.weight"; errors quote it
};

class Tensor;
using LeafDone = std::function<void(const Tensor& leaf)>;  // see Tensor::backward

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (e.g. "no bias"); defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories. Contents of empty() are unspecified.
  static Tensor empty(Shape shape);
  static Tensor zeros(Shape shape, bool requires_grad = false);
  static Tensor ones(Shape shape, bool requires_grad = false);
  static Tensor full(Shape shape, float value, bool requires_grad = false);
  static Tensor from_vector(Shape shape, const std::vector<float>& values,
                            bool requires_grad = false);  // throws if sizes differ
  static Tensor randn(Shape shape, Rng& rng, float stddev = 1.0f, bool requires_grad = false);
  static Tensor uniform(Shape shape, Rng& rng, float lo, float hi, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  int rank() const { return impl_->shape.rank(); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t numel() const { return impl_->shape.numel(); }

  // A const handle reads. A non-const handle's data() is for writing: it moves the storage's
  // version on, so copies made from the data (a weight's bf16 copy, src/ops/bf16.h) are remade
  // at their next use. Write through the pointer before the tensor is next used.
  const float* data() const { return impl_->storage->data + impl_->offset; }
  float* data() {
    impl_->storage->version.fetch_add(1, std::memory_order_relaxed);
    return impl_->storage->data + impl_->offset;
  }
  void copy_from(const Tensor& src);  // same shape
  float item() const;                                    // throws unless numel() == 1
  float at(std::initializer_list<int64_t> index) const;  // bounds-checked, for tests
  std::vector<float> to_vector() const;

  // Autograd fields.
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& set_requires_grad(bool on);  // leaves only
  // The accumulated gradient (backward kernels get theirs from the engine, see autograd.h).
  float* grad_data() const;  // null when there is none
  Tensor grad() const;       // undefined when there is none
  void zero_grad() const;    // drops the grad; the next backward starts from zero
  // Installs g (this tensor's shape, a whole storage) as the accumulated gradient, e.g. a sum
  // of gradients computed elsewhere; g's storage is shared, not copied.
  void set_grad(const Tensor& g) const;
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  Tensor detach() const;  // shares data, no grad_fn, requires_grad false

  // Reverse-mode pass from this tensor. The first form needs a single element (a loss);
  // the second seeds with a gradient of this tensor's shape. Throws qkv::Error otherwise, or
  // when the graph was already released by an earlier backward(). A given leaf_done(leaf) is
  // called for each leaf (a parameter) as soon as its gradient is complete, while the walk goes
  // on: data-parallel training reduces those gradients across processes during the rest of the
  // backward (PyTorch DDP's hooks).
  void backward(const LeafDone& leaf_done = {}) const;
  void backward(const Tensor& seed) const;

  const std::string& name() const { return impl_->name; }
  Tensor& set_name(std::string name);

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Prints shape, name and values (long tensors are abbreviated) like PyTorch's repr.
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Tensors by name, in order: a model's parameters, the optimizer's moments, a safetensors file.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What keeps `given` from filling `into` by name, one entry each: "duplicate 'x'", then for
// each of into's names in order "missing 'x'" or "'x' is [3], <expecter> expects [2]", then
// "unexpected 'y'"; empty when every name and shape fits.
std::vector<std::string> named_problems(const NamedTensors& given, const NamedTensors& into,
                                        std::string_view expecter);
// Copies into each of into's tensors the one of its name in given. When named_problems finds
// any, throws one qkv::Error "<what>: " listing them all instead, and copies nothing.
void copy_named(const NamedTensors& given, const NamedTensors& into, std::string_view what,
                std::string_view expecter);

}  // namespace qkv
