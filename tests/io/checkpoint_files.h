// The checkpoint tests' helpers (test_checkpoint.cpp, test_checkpoint_errors.cpp): a small
// checkpoint, comparisons, and edits of its files on disk.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/checkpoint.h"
#include "support/temp_dir.h"

namespace qkv::testing::checkpoint {

using namespace qkv::io;
namespace fs = std::filesystem;
using nlohmann::json;
using qkv::testing::read_file;
using qkv::testing::TempDir;

// A small checkpoint whose values differ with `seed`, with floats that must survive bit for bit.
inline CheckpointData sample_data(int seed) {
  const float s = float(seed);
  CheckpointData d;
  d.model = {{"tok_emb.weight", Tensor::from_vector({3, 2}, {s, -0.0f, 1e-30f, 1e-45f, -2.5f, 3})},
             {"blocks.0.ln1.weight", Tensor::from_vector({2}, {1.0f + s, 0.1f})}};
  d.optimizer = {{"m.tok_emb.weight", Tensor::full({3, 2}, 0.25f * s)},
                 {"v.tok_emb.weight", Tensor::full({3, 2}, 1e-8f)},
                 {"m.blocks.0.ln1.weight", Tensor::zeros({2})},
                 {"v.blocks.0.ln1.weight", Tensor::ones({2})}};
  d.optimizer_step = 7 + seed;
  d.trainer_state = {{"iteration", 7 + seed},
                     {"rng", {{"data", 18446744073709551615ull}, {"dropout", 42}}},
                     {"best_val_loss", 1.2345678901234567},
                     {"qkv_version", QKV_VERSION}};
  d.config_toml = "[model]\nn_embd = 2\n# seed " + std::to_string(seed) + "\n";
  d.vocab = {{"chars", {"\n", "a", "é"}}, {"specials", json::array()}};
  d.data_fingerprint = data::sha256_hex("the training text " + std::to_string(seed));
  return d;
}

inline bool same_tensors(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor &x = a[i].second, &y = b[i].second;
    if (a[i].first != b[i].first || x.shape() != y.shape() ||
        std::memcmp(x.data(), y.data(), size_t(x.numel()) * sizeof(float)) != 0)
      return false;
  }
  return true;
}

inline void check_same(const CheckpointData& got, const CheckpointData& want) {
  CHECK(same_tensors(got.model, want.model));
  CHECK(same_tensors(got.optimizer, want.optimizer));
  CHECK(got.optimizer_step == want.optimizer_step);
  CHECK(got.trainer_state == want.trainer_state);
  CHECK(got.config_toml == want.config_toml);
  CHECK(got.vocab == want.vocab);
  CHECK(got.data_fingerprint == want.data_fingerprint);
}

inline void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), std::streamsize(bytes.size()));
}

// Every entry under dir with its bytes and modification time, to prove nothing was touched.
inline std::map<std::string, std::pair<std::string, fs::file_time_type>> snapshot(
    const fs::path& dir) {
  std::map<std::string, std::pair<std::string, fs::file_time_type>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out[fs::relative(e.path(), dir).string()] = {e.is_regular_file() ? read_file(e.path()) : "",
                                                 e.last_write_time()};
  return out;
}

inline std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The message of the qkv::Error that fn throws (one line); fails the test if none is thrown.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.find('\n') == std::string::npos, msg);
    return msg;
  }
  FAIL("no qkv::Error was thrown");
  return "";
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Replaces a checkpoint file and updates the manifest to match, so only the file's own reader
// can notice what is wrong with it.
inline void replace_with_manifest(const fs::path& ckpt, const std::string& file,
                                  const std::string& bytes) {
  write_file(ckpt / file, bytes);
  json m = json::parse(read_file(ckpt / "manifest.json"));
  m["files"][file] = {{"sha256", data::sha256_hex(bytes)}, {"bytes", bytes.size()}};
  write_file(ckpt / "manifest.json", m.dump(2));
}

inline std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(v >> (8 * i));
  return s;
}

inline std::string raw_safetensors(const std::string& header, size_t data_bytes) {
  return u64_le(header.size()) + header + std::string(data_bytes, '\0');
}

}  // namespace qkv::testing::checkpoint
