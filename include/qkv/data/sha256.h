// SHA-256 (FIPS 180-4): the data fingerprint, the prepared corpus's source hashes and the
// checksums in checkpoint manifests. OpenSSL's libcrypto computes it (with the CPU's SHA
// instructions where it has them), so hashing keeps up with preparing a corpus.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace qkv::data {

// Incremental hashing: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(std::string_view bytes);
  std::array<uint8_t, 32> digest();  // finishes; the object must not be used after

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

// Lowercase hex of a digest (64 characters).
std::string to_hex(const std::array<uint8_t, 32>& digest);

// Lowercase hex of the SHA-256 of bytes.
std::string sha256_hex(std::string_view bytes);

// Lowercase hex of the SHA-256 of a file's contents, read in chunks. Throws qkv::Error naming
// the path when the file cannot be opened or read.
std::string sha256_file_hex(const std::string& path);

}  // namespace qkv::data
