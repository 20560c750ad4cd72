// The optimizer of a run: which parameters Muon takes, and the one step and state of both.
#include "qkv/optim/optimizer.h"

#include <set>
#include <string>
#include <string_view>

#include "qkv/error.h"

namespace qkv::optim {

namespace {

constexpr std::string_view kMomentum = "momentum.";

bool in_block(std::string_view name) {
  return name.starts_with("blocks.") || name.find(".blocks.") != std::string_view::npos;
}

int64_t parts_of(std::string_view name) {
  if (name.ends_with(".cross_attn.kv.weight")) return 2;
  if (name.ends_with(".attn.qkv.weight")) return 3;
  return 1;
}

NamedTensors adamw_params(const NamedTensors& params, const std::vector<MuonParam>& muon) {
  std::set<std::string> taken;
  for (const MuonParam& m : muon) taken.insert(m.name);
  NamedTensors rest;
  for (const auto& [name, p] : params)
    if (!taken.contains(name)) rest.emplace_back(name, p);
  return rest;
}

}  // namespace

std::vector<MuonParam> muon_params(const NamedTensors& params) {
  std::vector<MuonParam> out;
  for (const auto& [name, p] : params)
    if (p.rank() == 2 && in_block(name)) out.push_back({name, p, parts_of(name)});
  return out;
}

Optimizer::Optimizer(const NamedTensors& params, const OptimizerConfig& config)
    : config_(config),
      adamw_(config.kind == OptimizerKind::muon ? adamw_params(params, muon_params(params))
                                                : params,
             config.adamw) {
  if (config.kind == OptimizerKind::muon) muon_.emplace(muon_params(params), config.muon);
}

void Optimizer::zero_grad() {
  adamw_.zero_grad();
  if (muon_) muon_->zero_grad();
}

void Optimizer::step(float lr, float grad_scale) {
  adamw_.step(lr, grad_scale);
  // bench/ref_optim.py's set_lr: the group's base lr times lr / optim.lr, in double.
  if (muon_) muon_->step(config_.muon.lr * double(lr) / double(config_.lr), grad_scale);
}

NamedTensors Optimizer::state() const {
  NamedTensors out = adamw_.state();
  if (muon_)
    for (auto& entry : muon_->state()) out.push_back(std::move(entry));
  return out;
}

void Optimizer::load_state(const NamedTensors& state, int64_t step_count) {
  NamedTensors adamw, muon;
  for (const auto& entry : state)
    (entry.first.starts_with(kMomentum) ? muon : adamw).push_back(entry);
  // A run keeps its optim.kind on resume (train/start.cpp): a state of the other kind means the
  // checkpoint was not written by this run's config.
  QKV_CHECK(muon_.has_value() == !muon.empty(),
            "optimizer state: it is optim.kind = \"{}\"'s ({}), this run's optim.kind is \"{}\"; "
            "the optimizer cannot change on resume: start a new run from the checkpoint's weights "
            "with --init-from",
            muon_ ? "adamw" : "muon",
            muon_ ? "no Muon momentum" : fmt::format("'{}' is Muon's momentum", muon.front().first),
            muon_ ? "muon" : "adamw");
  if (muon_) muon_->load_state(muon);
  adamw_.load_state(adamw, step_count);
}

}  // namespace qkv::optim
