// Module registry: parameter and child bookkeeping, and state-dict loading.
#include "qkv/nn/module.h"

#include <algorithm>
#include <cassert>

namespace qkv::nn {

void Module::collect(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [name, t] : params_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

void Module::collect_modules(const std::string& prefix,
                             std::vector<std::pair<std::string, Module*>>& out) {
  for (const auto& [name, child] : children_) {
    out.emplace_back(prefix + name, child.get());
    child->collect_modules(prefix + name + ".", out);
  }
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  collect_modules("", out);
  return out;
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::name_parameters() {
  for (auto& [name, t] : named_parameters()) t.set_name(name);
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  for (auto& [name, t] : out) t = t.detach();
  return out;
}

std::vector<std::string> Module::state_dict_problems(const NamedTensors& dict) const {
  return named_problems(dict, named_parameters(), "model");
}

void Module::load_state_dict(const NamedTensors& dict) {
  copy_named(dict, named_parameters(), "load_state_dict", "model");
}

Tensor Module::param(std::string name, Shape shape, const Init& init) {
  assert(name.find('.') == std::string::npos);
  Tensor t = Tensor::zeros(shape);
  switch (init.kind) {
    case Init::Kind::zeros:
      break;
    case Init::Kind::ones:
      std::fill_n(t.data(), t.numel(), 1.0f);
      break;
    case Init::Kind::normal:
      t = Tensor::randn(shape, *init.rng, init.stddev);
      break;
  }
  t.set_requires_grad(true).set_name(name);
  params_.emplace_back(std::move(name), t);
  return t;
}

}  // namespace qkv::nn
