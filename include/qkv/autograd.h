// Reverse-mode autograd. Each op that runs with grad mode on and an input that requires grad
// records a Node: its inputs (edges, in argument order) and a closure that adds the input
// gradients given the output gradient. Tensor::backward() walks the nodes in reverse
// topological order, found iteratively, so deep graphs cannot overflow the stack.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "qkv/tensor.h"

namespace qkv {

struct Node {
  const char* op;                                   // "layer_norm": errors, graph dumps
  std::vector<std::shared_ptr<TensorImpl>> inputs;  // edges, in argument order
  // Puts the gradient of each input that requires one into its grad, through
  // Tensor::grad_out() (write a fresh grad, add to one that holds a gradient) or grad_data()
  // (add). The engine has allocated those grads, but not filled them.
  std::function<void(const float* dout)> backward;
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
bool needs_grad(const std::vector<Tensor>& inputs);

// Every op calls this after its forward kernel. Does nothing when grad mode is off or no input
// requires grad, so inference pays nothing.
// Note (capture rule): `backward` may capture inputs and saved buffers, never `out` itself
// (out -> grad_fn -> closure -> out is a cycle that leaks the graph). To reuse the output's
// values, capture out.detach().
void record(Tensor& out, const char* op, std::initializer_list<Tensor> inputs,
            std::function<void(const float* dout)> backward);
void record(Tensor& out, const char* op, const std::vector<Tensor>& inputs,
            std::function<void(const float* dout)> backward);

}  // namespace qkv
