// Reverse-mode autograd. Each op that runs with grad mode on and an input that requires grad
// records a Node: its inputs (edges, in argument order) and a closure that puts the input
// gradients given the output gradient. Tensor::backward() walks the nodes in reverse
// topological order, found iteratively, so deep graphs cannot overflow the stack.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <vector>

#include "qkv/tensor.h"

namespace qkv {

// Where a backward puts one input's gradient, as the engine resolved it before the call. A
// fresh grad (overwrite) holds garbage, and the kernel must write every element of it (=, or
// beta = 0 in a GEMM); otherwise the grad already holds a gradient and the kernel adds to it
// (+=, beta = 1). Null data: the input needs no gradient.
struct GradOut {
  float* data = nullptr;
  bool overwrite = false;

  explicit operator bool() const { return data != nullptr; }
  float beta() const { return overwrite ? 0.0f : 1.0f; }
  GradOut at(int64_t offset) const { return {data ? data + offset : nullptr, overwrite}; }
};

// For a kernel that can only add (a scatter): zero-fills a fresh grad of n elements, and returns
// where to add (null when the input needs no gradient). Call it once per GradOut.
float* zero_if_fresh(const GradOut& g, int64_t n);

// One GradOut per argument of the op, in argument order (see record()).
using GradOuts = std::span<const GradOut>;
using BackwardFn = std::function<void(const float* dout, GradOuts grads)>;

struct Node {
  const char* op;  // "layer_norm": errors, graph dumps
  // The op's arguments, in order; null where an argument is undefined or needs no gradient.
  std::vector<std::shared_ptr<TensorImpl>> inputs;
  // Puts the gradient of each input into grads[i]. The engine resolves each GradOut before the
  // call: a grad no earlier node wrote is fresh (overwrite); one that holds a gradient (a second
  // consumer, a leaf's earlier pass) is added to; one tensor in two roles of this node is
  // zero-filled and added to in both, so the kernel's order of writes does not matter.
  BackwardFn backward;
};

bool grad_enabled();

// Turns recording off for its lifetime (eval, sampling); restores the previous mode on exit.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op over these inputs must record a node.
bool needs_grad(std::initializer_list<Tensor> inputs);

// Every op calls this after its forward kernel. Does nothing when grad mode is off or no input
// requires grad, so inference pays nothing.
// Note (capture rule): `backward` may capture inputs and saved buffers, never `out` itself
// (out -> grad_fn -> closure -> out is a cycle that leaks the graph). To reuse the output's
// values, capture out.detach().
void record(Tensor& out, const char* op, std::initializer_list<Tensor> inputs, BackwardFn backward);
void record(Tensor& out, const char* op, const std::vector<Tensor>& inputs, BackwardFn backward);

}  // namespace qkv
