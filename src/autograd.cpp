// The reverse-mode engine: order the graph (iterative DFS, inputs in argument order, so the
// order and hence every gradient sum is deterministic), then run each node's backward from the
// output down, freeing saved tensors and intermediate grads as it goes.
#include "qkv/autograd.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "op_profile.h"
#include "qkv/error.h"

namespace qkv {
namespace {

thread_local bool g_grad_enabled = true;

// The GradOuts of node's inputs. A grad created here is not filled: the node's backward writes
// it (overwrite), which saves zero-filling every activation's grad. Every node hands each input
// to its backward, which writes or adds to it, so a grad that exists holds a gradient.
void resolve_grads(const Node& node, std::vector<GradOut>& grads) {
  grads.assign(node.inputs.size(), GradOut{});
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    TensorImpl* t = node.inputs[i].get();
    if (!t) continue;
    const bool fresh = !t->grad;
    if (fresh) t->grad = std::make_shared<Storage>(t->shape.numel());
    grads[i] = {t->grad->data, fresh};
    for (size_t j = 0; j < i; ++j)  // one tensor in two roles: both add, to zeros if fresh
      if (node.inputs[j].get() == t && grads[j].overwrite) {
        std::memset(t->grad->data, 0, sizeof(float) * static_cast<size_t>(t->grad->numel));
        grads[j].overwrite = false;
        grads[i].overwrite = false;
      }
  }
}

void check_not_released(const TensorImpl& t) {
  QKV_CHECK(!t.graph_released,
            "backward: the graph through this tensor was already released by an earlier "
            "backward(); run the forward pass again before calling backward a second time");
}

// Post-order over the nodes reachable from root: every tensor comes after all it depends on.
std::vector<std::shared_ptr<TensorImpl>> topological_order(
    const std::shared_ptr<TensorImpl>& root) {
  std::vector<std::shared_ptr<TensorImpl>> order;
  std::unordered_set<const TensorImpl*> visited{root.get()};
  std::vector<std::pair<std::shared_ptr<TensorImpl>, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [t, next] = stack.back();
    const auto& inputs = t->grad_fn->inputs;
    if (next < inputs.size()) {
      const std::shared_ptr<TensorImpl>& in = inputs[next++];
      if (!in) continue;
      check_not_released(*in);
      if (in->grad_fn && visited.insert(in.get()).second) stack.emplace_back(in, 0);
    } else {
      order.push_back(std::move(t));
      stack.pop_back();
    }
  }
  return order;
}

// For each node of order, walked from the back, the leaves that no later node reaches: their
// gradients are complete once it has run.
std::vector<std::vector<std::shared_ptr<TensorImpl>>> leaves_done_after(
    const std::vector<std::shared_ptr<TensorImpl>>& order) {
  std::unordered_map<TensorImpl*, size_t> last;
  for (size_t k = 0; k < order.size(); ++k)
    for (const auto& in : order[order.size() - 1 - k]->grad_fn->inputs)
      if (in && !in->grad_fn) last[in.get()] = k;
  std::vector<std::vector<std::shared_ptr<TensorImpl>>> done(order.size());
  for (size_t k = 0; k < order.size(); ++k)
    for (const auto& in : order[order.size() - 1 - k]->grad_fn->inputs)
      if (in && !in->grad_fn && last[in.get()] == k) {
        done[k].push_back(in);
        last[in.get()] = order.size();  // an input used twice by one node is done once
      }
  return done;
}

void run_backward(const std::shared_ptr<TensorImpl>& root, const float* seed,
                  const LeafDone* leaf_done) {
  check_not_released(*root);
  QKV_CHECK(root->requires_grad,
            "backward: tensor does not require grad (no input of its graph requires grad)");
  const int64_t n = root->shape.numel();
  if (root->grad) {
    for (int64_t i = 0; i < n; ++i) root->grad->data[i] += seed[i];
  } else {
    root->grad = std::make_shared<Storage>(n);
    std::copy(seed, seed + n, root->grad->data);
  }
  if (!root->grad_fn) {  // a leaf: its grad is the seed
    if (leaf_done) (*leaf_done)(Tensor(root));
    return;
  }

  NoGradGuard no_grad;  // backward closures never record
  const auto order = topological_order(root);
  const auto done_after =
      leaf_done ? leaves_done_after(order) : std::vector<std::vector<std::shared_ptr<TensorImpl>>>();
  std::vector<GradOut> grads;
  for (size_t k = 0; k < order.size(); ++k) {
    TensorImpl& t = *order[order.size() - 1 - k];
    std::shared_ptr<Node> node = std::move(t.grad_fn);
    resolve_grads(*node, grads);
    const bool timed = op_profile::enabled();
    const auto t0 =
        timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    node->backward(t.grad->data, grads);
    if (timed) op_profile::backward_ran(node->op, t.shape, t0);
    t.graph_released = true;
    t.grad.reset();  // intermediates keep no grad, so their storage is reused by the next node
    if (leaf_done)
      for (const auto& leaf : done_after[k]) (*leaf_done)(Tensor(leaf));
  }
}

}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

template <class Range>
static bool any_needs_grad(const Range& inputs) {
  return g_grad_enabled && std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) {
           return t.defined() && t.requires_grad();
         });
}

bool needs_grad(std::initializer_list<Tensor> inputs) { return any_needs_grad(inputs); }

float* zero_if_fresh(const GradOut& g, int64_t n) {
  if (g.overwrite) std::memset(g.data, 0, sizeof(float) * static_cast<size_t>(n));
  return g.data;
}

template <class Range>
static void record_impl(Tensor& out, const char* op, const Range& inputs, BackwardFn&& backward) {
  auto node = std::make_shared<Node>();
  node->op = op;
  for (const Tensor& t : inputs)
    node->inputs.push_back(t.defined() && t.requires_grad() ? t.impl_ptr() : nullptr);
  node->backward = std::move(backward);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  if (op_profile::enabled()) op_profile::forward_recorded(op, out.shape());
}

void record(Tensor& out, const char* op, std::initializer_list<Tensor> inputs,
            BackwardFn backward) {
  if (any_needs_grad(inputs)) record_impl(out, op, inputs, std::move(backward));
}

void record(Tensor& out, const char* op, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (any_needs_grad(inputs)) record_impl(out, op, inputs, std::move(backward));
}

void Tensor::backward(const LeafDone& leaf_done) const {
  QKV_CHECK(numel() == 1,
            "backward: tensor of shape {} is not a scalar; pass a seed gradient of that shape",
            shape());
  const float one = 1.0f;
  run_backward(impl_, &one, leaf_done ? &leaf_done : nullptr);
}

void Tensor::backward(const Tensor& seed) const {
  QKV_CHECK(seed.shape() == shape(), "backward: seed gradient has shape {}, tensor has {}",
            seed.shape(), shape());
  run_backward(impl_, seed.data(), nullptr);
}

}  // namespace qkv
