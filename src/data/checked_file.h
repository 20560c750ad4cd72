// A prepared corpus's binary file, read in place with its 64 KiB blocks checked against
// "<file>.xxh3" the first time each is read (corpus.cpp's ids.bin and pairs.bin).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qkv::data {

// Reads are pread()s into the caller's buffer rather than through a mapping: the process then
// holds only the windows it asked for (a mapping's pages stay resident, 64 KiB around each
// fault, and its memory would grow with the corpus as batches land everywhere), and a file
// truncated behind our back is an error, not a SIGBUS. The page cache is shared all the same.
class CheckedFile {
 public:
  // Opens path, which must be expect_bytes long, and its checksum list, whose SHA-256 the
  // header records. Throws qkv::Error naming the damaged file.
  CheckedFile(const std::string& path, int64_t expect_bytes, const std::string& sums_sha256);
  ~CheckedFile();
  CheckedFile(const CheckedFile&) = delete;
  CheckedFile& operator=(const CheckedFile&) = delete;

  // Bytes [at, at + n) into out; a block read for the first time is read whole and checked.
  void read(size_t at, size_t n, uint8_t* out) const;

 private:
  std::string path_;
  size_t size_ = 0;
  int fd_ = -1;
  std::vector<uint64_t> sums_;
  std::unique_ptr<std::atomic<bool>[]> checked_;
};

}  // namespace qkv::data
