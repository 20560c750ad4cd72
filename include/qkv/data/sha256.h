// SHA-256 (FIPS 180-4): the data fingerprint and the checksums in checkpoint manifests.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace qkv::data {

// Incremental hashing: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  std::array<uint8_t, 32> digest();  // pads and finishes; the object must not be used after

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buffer_{};
  uint64_t buffered_ = 0;  // bytes waiting in buffer_
  uint64_t total_ = 0;     // message length so far, in bytes
};

// Lowercase hex of a digest (64 characters).
std::string to_hex(const std::array<uint8_t, 32>& digest);

// Lowercase hex of the SHA-256 of bytes.
std::string sha256_hex(std::string_view bytes);

// Lowercase hex of the SHA-256 of a file's contents, read in chunks. Throws qkv::Error naming
// the path when the file cannot be opened or read.
std::string sha256_file_hex(const std::string& path);

}  // namespace qkv::data
