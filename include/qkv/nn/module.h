// Module: the base of every layer and model. It owns named parameters and named child modules,
// both in registration order, and yields PyTorch-style dotted names ("blocks.0.attn.qkv.weight")
// — the keys of model.safetensors and of the optimizer state.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qkv/rng.h"
#include "qkv/tensor.h"

namespace qkv::nn {

// How param() fills a new parameter. normal() draws from rng in row-major order, so building
// the same modules in the same order from the same seed gives identical weights.
struct Init {
  enum class Kind { zeros, ones, normal };
  Kind kind = Kind::zeros;
  float stddev = 0.0f;
  Rng* rng = nullptr;

  static Init zeros() { return {Kind::zeros}; }
  static Init ones() { return {Kind::ones}; }
  static Init normal(Rng& rng, float stddev) { return {Kind::normal, stddev, &rng}; }
};

class Module {
 public:
  Module() = default;
  // Owns its children, and subclasses keep references and pointers into them (see submodule):
  // never copied or moved.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // Depth-first, in registration order, own parameters before children's.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;

  // Every module below this one, depth-first in registration order, with its dotted name
  // ("blocks.0.attn"). For finding layers by type.
  std::vector<std::pair<std::string, Module*>> named_modules();

  // Sets every parameter's Tensor::name() to its dotted name from this module, so op errors
  // quote "blocks.0.mlp.fc.weight". The model classes call it at the end of their constructors;
  // until then a parameter is named by its local name ("weight").
  void name_parameters();

  // name -> parameter, in named_parameters() order. The tensors share the parameters' data
  // but carry no autograd state (detached), as in PyTorch.
  NamedTensors state_dict() const;
  // Copies dict's values into the parameters. Checks every name and shape first and throws one
  // qkv::Error listing ALL problems ("load_state_dict: missing 'ln_f.weight'; unexpected 'foo';
  // 'blocks.0.attn.qkv.weight' is [96, 32], model expects [96, 31]"); copies nothing then.
  void load_state_dict(const NamedTensors& dict);
  // The problems load_state_dict would report, one per entry, in that order; empty when dict
  // fits. For callers that word the error themselves (naming the checkpoint file).
  std::vector<std::string> state_dict_problems(const NamedTensors& dict) const;

 protected:
  // Registers a leaf tensor that requires grad, named `name` (no dots), filled by init.
  Tensor param(std::string name, Shape shape, const Init& init);

  // Registers and returns a child module built from args, named `name` (not empty). One rule for
  // keeping what it returns, in every module of nn/: a child that always exists is held by
  // reference (`Linear& fc_;`), an optional one by pointer (null when absent), and repeated
  // blocks ("blocks.0", "blocks.1", ...) in a vector of pointers.
  // A model that is its stack plus a head derives from the stack, so the stack's names need no
  // prefix (DecoderModel, qkv/nn/models.h).
  template <class M, class... Args>
  M& submodule(std::string name, Args&&... args) {
    assert(!name.empty());
    auto child = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *child;
    children_.emplace_back(std::move(name), std::move(child));
    return ref;
  }

 private:
  void collect(const std::string& prefix, NamedTensors& out) const;
  void collect_modules(const std::string& prefix,
                       std::vector<std::pair<std::string, Module*>>& out);

  NamedTensors params_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

}  // namespace qkv::nn
