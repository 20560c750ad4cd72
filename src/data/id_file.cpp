// CharTable and IdFile: provisional ids, growing widths, and the final renumbering pass.
#include "data/id_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "data/corpus_files.h"
#include "qkv/data/corpus.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/durable_file.h"
#include "qkv/io/regular_file.h"

namespace qkv::data {

namespace {

constexpr char32_t kCodePoints = 0x110000;

void pwrite_all(int fd, const uint8_t* p, size_t n, int64_t at, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) io::throw_os_error(path, "cannot write", errno);
    p += w, n -= size_t(w), at += w;
  }
}

uint32_t load_id(const uint8_t* p, int width) {
  uint32_t v = 0;
  std::memcpy(&v, p, size_t(width));
  return v;
}

}  // namespace

CharTable::CharTable() : table_(kCodePoints, -1) {}

int32_t CharTable::id(char32_t cp) {
  int32_t& id = table_[cp];
  if (id < 0) {
    id = int32_t(chars_.size());
    chars_.push_back(cp);
  }
  return id;
}

void narrow_ids(const uint32_t* ids, int64_t n, int width, uint8_t* out) {
  if (width == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(ids[i]);
  } else if (width == 2) {
    for (int64_t i = 0; i < n; ++i) {
      const auto v = uint16_t(ids[i]);
      std::memcpy(out + 2 * i, &v, 2);
    }
  } else {
    std::memcpy(out, ids, size_t(n) * 4);
  }
}

IdFile::IdFile(std::string path)
    : path_(std::move(path)), block_(XXH3_createState(), XXH3_freeState) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) io::throw_os_error(path_, "cannot create", errno);
  XXH3_64bits_reset(block_.get());
}

IdFile::~IdFile() { ::close(fd_); }

void IdFile::write(const uint8_t* bytes, int64_t ids) {
  const size_t n = size_t(ids) * size_t(width_);
  pwrite_all(fd_, bytes, n, count_ * width_, path_);
  checksum(bytes, n);
  count_ += ids;
}

void IdFile::checksum(const uint8_t* bytes, size_t n) {
  while (n > 0) {
    const size_t take = std::min(n, size_t(kCorpusBlockBytes) - block_fill_);
    XXH3_64bits_update(block_.get(), bytes, take);
    bytes += take, n -= take, block_fill_ += take;
    if (block_fill_ == size_t(kCorpusBlockBytes)) {
      sums_.push_back(XXH3_64bits_digest(block_.get()));
      XXH3_64bits_reset(block_.get());
      block_fill_ = 0;
    }
  }
}

void IdFile::fit(int64_t vocab) {
  const int need = id_width_for(vocab);
  if (need <= width_) return;
  // Rare (a vocabulary past 256 or 65536 symbols): rewrite the ids so far, wider, in place
  // from the back so that nothing is overwritten before it is read.
  constexpr int64_t kStep = 1 << 20;
  std::vector<uint8_t> in(static_cast<size_t>(kStep * width_));
  std::vector<uint32_t> ids(static_cast<size_t>(kStep));
  std::vector<uint8_t> out(static_cast<size_t>(kStep * need));
  for (int64_t end = count_; end > 0;) {
    const int64_t begin = std::max<int64_t>(0, end - kStep), n = end - begin;
    io::read_at(fd_, path_, begin * width_, in.data(), size_t(n) * size_t(width_));
    for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = load_id(in.data() + i * width_, width_);
    narrow_ids(ids.data(), n, need, out.data());
    pwrite_all(fd_, out.data(), size_t(n) * size_t(need), begin * need, path_);
    end = begin;
  }
  width_ = need;
  sums_.clear();
  XXH3_64bits_reset(block_.get());
  block_fill_ = 0;
  for (int64_t at = 0, bytes = count_ * width_; at < bytes; at += int64_t(out.size())) {
    const size_t n = size_t(std::min<int64_t>(int64_t(out.size()), bytes - at));
    io::read_at(fd_, path_, at, out.data(), n);
    checksum(out.data(), n);
  }
}

std::string IdFile::finish() {
  if (block_fill_ > 0) sums_.push_back(XXH3_64bits_digest(block_.get()));
  block_fill_ = 0;
  // ids.bin is left to the kernel to write back: an fsync would hold preparing to the disk's
  // speed, and a file torn by a crash fails its block checksums when read.
  const std::string_view bytes(reinterpret_cast<const char*>(sums_.data()), sums_.size() * 8);
  io::write_file_synced(path_ + ".xxh3", bytes);
  return sha256_hex(bytes);
}

}  // namespace qkv::data
