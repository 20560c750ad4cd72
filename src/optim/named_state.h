// Internal: how AdamW and Muon restore their state tensors, by name.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "qkv/error.h"
#include "qkv/tensor.h"

namespace qkv::optim {

// Copies into each of `into`'s tensors the one of its name in `state`, once every name and
// shape is checked: otherwise throws qkv::Error "optimizer state: ..." listing every missing,
// mis-shaped and unexpected entry, and copies nothing.
inline void load_named_state(const NamedTensors& state, const NamedTensors& into) {
  std::map<std::string, Tensor> given(state.begin(), state.end());
  std::string problems;
  auto note = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  std::vector<std::pair<Tensor, Tensor>> copies;
  for (const auto& [name, dst] : into) {
    auto it = given.find(name);
    if (it == given.end()) {
      note(fmt::format("missing '{}'", name));
      continue;
    }
    if (it->second.shape() == dst.shape())
      copies.emplace_back(dst, it->second);
    else
      note(fmt::format("'{}' is {}, parameter expects {}", name, it->second.shape(), dst.shape()));
    given.erase(it);
  }
  for (const auto& [name, t] : given) note(fmt::format("unexpected '{}'", name));
  QKV_CHECK(problems.empty(), "optimizer state: {}", problems);
  for (auto& [dst, src] : copies) std::copy_n(std::as_const(src).data(), src.numel(), dst.data());
}

}  // namespace qkv::optim
