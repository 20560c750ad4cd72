// The two halves of encoding a corpus in one pass: CharTable gives each new character a
// provisional id as it is first seen (from any thread); IdFile writes those ids in the
// narrowest width so far, and at the end renumbers them in ascending code point order (the
// vocabulary's order) while it checksums the blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace qkv::data {

class CharTable {
 public:
  CharTable();
  // The provisional id of cp; thread-safe.
  int32_t id(char32_t cp) {
    const int32_t known = table_[cp].load(std::memory_order_acquire);
    return known >= 0 ? known : add(cp);
  }
  int64_t size() const;
  std::vector<char32_t> sorted_chars() const;
  // final_ids()[provisional id] = the id in the sorted vocabulary.
  std::vector<int32_t> final_ids() const;

 private:
  int32_t add(char32_t cp);
  std::unique_ptr<std::atomic<int32_t>[]> table_;  // code point -> provisional id, or -1
  std::vector<char32_t> chars_;                     // provisional id -> code point
  mutable std::mutex mutex_;
};

class IdFile {
 public:
  explicit IdFile(std::string path);
  ~IdFile();
  IdFile(const IdFile&) = delete;
  IdFile& operator=(const IdFile&) = delete;

  // Makes the width hold ids below vocab, rewriting what was written if it must grow.
  void fit(int64_t vocab);
  int width() const { return width_; }
  int64_t count() const { return count_; }
  // Appends ids already narrowed to width() bytes each.
  void write(const uint8_t* bytes, int64_t ids);
  // Renumbers every id through final_of, writes "<path>.xxh3" (fsynced); returns the
  // SHA-256 of the checksum file, for the header.
  std::string finish(const std::vector<int32_t>& final_of);

 private:
  std::string path_;
  int fd_ = -1;
  int width_ = 1;
  int64_t count_ = 0;
};

// Narrows n 32-bit ids to `width` bytes each (little-endian).
void narrow_ids(const uint32_t* ids, int64_t n, int width, uint8_t* out);

}  // namespace qkv::data
