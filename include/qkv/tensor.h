// Tensor: a cheap handle (shared pointer) to float32, row-major, contiguous data of rank <= 4,
// plus the autograd fields. Copies of a handle share data; reshape/view share storage.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qkv/rng.h"
#include "qkv/shape.h"

namespace qkv {

struct Node;

// Where a backward puts one input's gradient (Tensor::grad_out). A fresh grad (overwrite) holds
// garbage, and the kernel must write every element of it (=, or beta = 0 in a GEMM); otherwise
// the grad already holds a gradient and the kernel adds to it (+=, beta = 1). Null data: the
// input needs no gradient.
struct GradOut {
  float* data = nullptr;
  bool overwrite = false;

  explicit operator bool() const { return data != nullptr; }
  float beta() const { return overwrite ? 0.0f : 1.0f; }
  GradOut at(int64_t offset) const { return {data ? data + offset : nullptr, overwrite}; }
};

// One 64-byte-aligned float block from the caching allocator; returned to it on destruction.
struct Storage {
  explicit Storage(int64_t numel);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  float* data = nullptr;
  int64_t numel = 0;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // first element of this view within storage
  Shape shape;
  bool requires_grad = false;
  std::shared_ptr<Storage> grad;  // same numel as shape, or null before any backward reaches it
  // The backward engine creates a grad without filling it. Until a kernel writes it, it holds
  // garbage that reads as zeros: grad_out() hands it out to be written, while grad_data() and
  // grad() zero-fill it first.
  bool grad_unwritten = false;
  void fill_unwritten_grad();     // zeros into a grad nothing wrote, so it can be read or added to
  // A bf16 copy of the data, for parameters that bf16 GEMMs read (src/ops/bf16.h): made on first
  // use, rewritten by AdamW::step with the new values, dropped by Module::load_state_dict.
  std::shared_ptr<Storage> bf16;
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

  // Shallow const, like a pointer: a const handle still reaches mutable data.
  float* data() const { return impl_->storage->data + impl_->offset; }
  float item() const;                                    // throws unless numel() == 1
  float at(std::initializer_list<int64_t> index) const;  // bounds-checked, for tests
  std::vector<float> to_vector() const;

  // Autograd fields.
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& set_requires_grad(bool on);  // leaves only
  // A backward kernel's two ways to its input's gradient (null unless requires_grad and a grad
  // exists): grad_data() zero-fills a fresh grad, for kernels that only add (scatters);
  // grad_out() hands it out unfilled, marked overwrite, for kernels that write every element.
  // The first call on a fresh grad claims it: later calls (an input used twice) add.
  float* grad_data() const;
  GradOut grad_out() const;
  Tensor grad() const;     // undefined when no grad has been accumulated
  void zero_grad() const;  // drops the grad; the next backward starts from zero
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  Tensor detach() const;  // shares data, no grad_fn, requires_grad false

  // Reverse-mode pass from this tensor. The first form needs a single element (a loss);
  // the second seeds with a gradient of this tensor's shape. Throws qkv::Error otherwise, or
  // when the graph was already released by an earlier backward().
  void backward() const;
  void backward(const Tensor& seed) const;
  // The first form, calling leaf_done(leaf) for each leaf (a parameter) as soon as its gradient
  // is complete, while the walk goes on: data-parallel training reduces those gradients across
  // processes during the rest of the backward (PyTorch DDP's hooks).
  void backward(const LeafDone& leaf_done) const;

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

}  // namespace qkv
