// The two halves of encoding a corpus in one pass: CharTable numbers each character in the
// order it is first seen, and IdFile writes those ids in the narrowest width
// so far, checksumming each 64 KiB block as it goes. The ids stay in first-seen order, the
// header listing the characters in that order: renumbering them into the vocabulary's sorted
// order would cost a second pass over the whole file, and a reader maps them as it reads.
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qkv::data {

// Called from one thread: parallel encoders number their own parts' characters and join them
// here in text order (prepare.cpp), so the numbering does not depend on the threads.
class CharTable {
 public:
  CharTable();
  // The id of cp, given when first seen.
  int32_t id(char32_t cp);
  int64_t size() const { return int64_t(chars_.size()); }
  const std::vector<char32_t>& chars() const { return chars_; }  // by id

 private:
  std::vector<int32_t> table_;  // code point -> id, or -1
  std::vector<char32_t> chars_;  // id -> code point
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
  // Writes "<path>.xxh3" (fsynced); returns its SHA-256, for the header.
  std::string finish();

 private:
  void checksum(const uint8_t* bytes, size_t n);

  std::string path_;
  int fd_ = -1;
  int width_ = 1;
  int64_t count_ = 0;
  std::vector<uint64_t> sums_;  // of the whole blocks written
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> block_;
  size_t block_fill_ = 0;
};

// Narrows n 32-bit ids to `width` bytes each (little-endian).
void narrow_ids(const uint32_t* ids, int64_t n, int width, uint8_t* out);

}  // namespace qkv::data
