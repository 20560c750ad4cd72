// CheckedFile: pread()s of a prepared corpus's file, each block checked once per process.
#include "data/checked_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "data/corpus_files.h"
#include "qkv/data/corpus.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/error_context.h"
#include "qkv/io/regular_file.h"

namespace qkv::data {

CheckedFile::CheckedFile(const std::string& path, int64_t expect_bytes,
                         const std::string& sums_sha256)
    : path_(path), size_(size_t(expect_bytes)) {
  fd_ = in_context("", [&] { return io::open_regular(path); }, "; prepare the corpus again");
  // The destructor does not run for a constructor that throws: close the file first.
  auto check = [&](bool ok, const std::string& message) {
    if (ok) return;
    ::close(fd_);
    throw Error(message);
  };
  struct stat st {};
  ::fstat(fd_, &st);
  check(S_ISREG(st.st_mode) && st.st_size == expect_bytes,
        fmt::format("{}: {} bytes where the corpus header says {}: the file is damaged or "
                    "truncated; prepare the corpus again",
                    path, int64_t(st.st_size), expect_bytes));
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
  std::ifstream in(path + ".xxh3", std::ios::binary);
  std::ostringstream sums;
  sums << in.rdbuf();
  const std::string bytes = std::move(sums).str();
  const size_t blocks = (size_ + kCorpusBlockBytes - 1) / kCorpusBlockBytes;
  check(in && bytes.size() == blocks * 8 && sha256_hex(bytes) == sums_sha256,
        fmt::format("{}.xxh3: missing or damaged (it must hold the checksums of {} block{}); "
                    "prepare the corpus again",
                    path, blocks, blocks == 1 ? "" : "s"));
  sums_.resize(blocks);
  std::memcpy(sums_.data(), bytes.data(), bytes.size());
  checked_ = std::make_unique<std::atomic<bool>[]>(blocks);
}

CheckedFile::~CheckedFile() { ::close(fd_); }

void CheckedFile::read(size_t at, size_t n, uint8_t* out) const {
  thread_local std::vector<uint8_t> block(kCorpusBlockBytes);
  for (size_t pos = at, end = at + n; pos < end;) {
    const size_t b = pos / kCorpusBlockBytes, begin = b * kCorpusBlockBytes;
    const size_t stop = std::min(end, begin + kCorpusBlockBytes);
    if (checked_[b].load(std::memory_order_acquire)) {
      io::read_at(fd_, path_, pos, out + (pos - at), stop - pos);
    } else {
      const size_t len = std::min<size_t>(kCorpusBlockBytes, size_ - begin);
      io::read_at(fd_, path_, begin, block.data(), len);
      QKV_CHECK(block_checksum(block.data(), len) == sums_[b],
                "{}: bytes {}..{} do not match their checksum: the file is damaged; prepare the "
                "corpus again",
                path_, begin, begin + len);
      checked_[b].store(true, std::memory_order_release);
      std::memcpy(out + (pos - at), block.data() + (pos - begin), stop - pos);
    }
    pos = stop;
  }
}

}  // namespace qkv::data
