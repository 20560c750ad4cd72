// Module registry: parameter and child bookkeeping, and state-dict loading.
#include "qkv/nn/module.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cassert>
#include <map>
#include <set>

#include "qkv/error.h"

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
  std::map<std::string, const Tensor*> given;
  std::vector<std::string> problems;
  for (const auto& [name, t] : dict)
    if (!given.emplace(name, &t).second) problems.push_back(fmt::format("duplicate '{}'", name));

  std::set<std::string> expected;
  for (const auto& [name, p] : named_parameters()) {
    expected.insert(name);
    auto it = given.find(name);
    if (it == given.end())
      problems.push_back(fmt::format("missing '{}'", name));
    else if (!(it->second->shape() == p.shape()))
      problems.push_back(
          fmt::format("'{}' is {}, model expects {}", name, it->second->shape(), p.shape()));
  }
  for (const auto& [name, t] : dict)
    if (!expected.contains(name)) problems.push_back(fmt::format("unexpected '{}'", name));
  return problems;
}

void Module::load_state_dict(const NamedTensors& dict) {
  const std::vector<std::string> problems = state_dict_problems(dict);
  QKV_CHECK(problems.empty(), "load_state_dict: {}", fmt::join(problems, "; "));

  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : dict) given.emplace(name, &t);
  for (auto& [name, p] : named_parameters()) {
    p.copy_from(*given.at(name));
  }
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
