// Rank 0's checkpoint on every process: one JSON header (names, shapes and the small parts),
// then each tensor's values.
#include "checkpoint_broadcast.h"

#include <nlohmann/json.hpp>

namespace qkv::parallel {

namespace {

nlohmann::json shapes(const NamedTensors& tensors) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, t] : tensors) {
    std::vector<int64_t> dims;
    for (int i = 0; i < t.rank(); ++i) dims.push_back(t.shape()[i]);
    out.push_back({name, dims});
  }
  return out;
}

NamedTensors allocate(const nlohmann::json& shapes) {
  NamedTensors out;
  for (const auto& entry : shapes) {
    const auto dims = entry[1].get<std::vector<int64_t>>();
    out.emplace_back(entry[0].get<std::string>(), Tensor::zeros(Shape(dims.begin(), dims.end())));
  }
  return out;
}

}  // namespace

SharedCheckpoint broadcast_checkpoint(const Distributed& dist,
                                      std::optional<SharedCheckpoint> mine) {
  if (dist.size() == 1) return std::move(*mine);
  std::string header;
  if (mine) {
    const io::CheckpointData& d = mine->data;
    header = nlohmann::json{{"dir", mine->dir},
                            {"model", shapes(d.model)},
                            {"optimizer", shapes(d.optimizer)},
                            {"optimizer_step", d.optimizer_step},
                            {"manifest_step", d.manifest_step},
                            {"trainer_state", d.trainer_state},
                            {"config_toml", d.config_toml},
                            {"vocab", d.vocab},
                            {"data_fingerprint", d.data_fingerprint}}
                 .dump();
  }
  dist.broadcast(header);
  if (!mine) {
    const auto h = nlohmann::json::parse(header);
    mine = SharedCheckpoint{.dir = h["dir"],
                            .data = {.model = allocate(h["model"]),
                                     .optimizer = allocate(h["optimizer"]),
                                     .optimizer_step = h["optimizer_step"],
                                     .manifest_step = h["manifest_step"],
                                     .trainer_state = h["trainer_state"],
                                     .config_toml = h["config_toml"],
                                     .vocab = h["vocab"],
                                     .data_fingerprint = h["data_fingerprint"]}};
  }
  for (NamedTensors* tensors : {&mine->data.model, &mine->data.optimizer})
    for (auto& [name, t] : *tensors) dist.broadcast(std::span(t.data(), size_t(t.numel())));
  return std::move(*mine);
}

}  // namespace qkv::parallel
