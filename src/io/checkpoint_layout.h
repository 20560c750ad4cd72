// The files of a checkpoint directory (docs/checkpoint-format.md), shared by the writer
// (checkpoint.cpp) and the verifying reader (checkpoint_load.cpp).
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qkv::io::layout {

inline constexpr int64_t kFormatVersion = 1;  // of manifest.json and the files it lists
inline constexpr const char* kManifest = "manifest.json";
inline constexpr const char* kModel = "model.safetensors";
inline constexpr const char* kOptimizer = "optimizer.safetensors";
inline constexpr const char* kTrainerState = "trainer_state.json";
inline constexpr const char* kConfig = "config.toml";
inline constexpr const char* kVocab = "vocab.json";

// A non-negative integer written canonically ("05" and "+5" are not): steps and pids.
inline std::optional<int64_t> parse_uint(std::string_view digits) {
  int64_t v = -1;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size() || v < 0 ||
      digits != std::to_string(v))
    return std::nullopt;
  return v;
}

// The step of a "checkpoint-<step>" name.
inline std::optional<int64_t> parse_dir_name(std::string_view name) {
  constexpr std::string_view prefix = "checkpoint-";
  if (!name.starts_with(prefix)) return std::nullopt;
  return parse_uint(name.substr(prefix.size()));
}

}  // namespace qkv::io::layout
