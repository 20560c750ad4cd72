// TextSource: plain, zstd and JSON-lines readers over one raw file reader.
#include "data/text_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/regular_file.h"

namespace qkv::data {

namespace {

// The file's bytes, hashed as they pass.
class RawFile {
 public:
  // hash: hash the bytes as they are read; otherwise bytes_hash() is fed by whoever reads.
  RawFile(const std::string& path, bool hash) : path_(path), hash_(hash) {
    fd_ = io::open_regular(path);
    struct stat st {};
    ::fstat(fd_, &st);
    info_ = {path, int64_t(st.st_size),
             int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, "", 0};
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~RawFile() { ::close(fd_); }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;

  size_t read(char* buf, size_t n) {
    for (;;) {
      const ssize_t got = ::read(fd_, buf, n);
      if (got < 0 && errno == EINTR) continue;
      QKV_CHECK(got >= 0, "{}: read error ({})", path_, std::strerror(errno));
      if (hash_) sha_.update(std::string_view(buf, size_t(got)));
      done_ += got;
      if (got == 0) {
        QKV_CHECK(done_ == info_.size, "{}: changed while it was read ({} bytes, then {})", path_,
                  info_.size, done_);
      }
      return size_t(got);
    }
  }
  // Once the file has been read to its end, and its bytes hashed.
  CorpusSource info() {
    if (info_.sha256.empty()) info_.sha256 = to_hex(sha_.digest());
    return info_;
  }
  int64_t done() const { return done_; }
  const std::string& path() const { return path_; }
  Sha256& bytes_hash() { return sha_; }

 private:
  std::string path_;
  bool hash_;
  int fd_ = -1;
  Sha256 sha_;
  CorpusSource info_;
  int64_t done_ = 0;
};

class PlainSource : public TextSource {
 public:
  explicit PlainSource(const std::string& path) : file_(path, false) {}
  size_t read(char* buf, size_t n) override { return file_.read(buf, n); }
  CorpusSource info() override { return file_.info(); }
  int64_t bytes_read() const override { return file_.done(); }
  Sha256* bytes_hash() override { return &file_.bytes_hash(); }

 protected:
  RawFile file_;
};

class ZstdSource : public TextSource {
 public:
  explicit ZstdSource(const std::string& path)
      : file_(path, true), dctx_(ZSTD_createDCtx()), in_(ZSTD_DStreamInSize()) {
    QKV_CHECK(dctx_, "{}: zstd could not start", path);
  }
  ~ZstdSource() override { ZSTD_freeDCtx(dctx_); }
  size_t read(char* buf, size_t n) override {
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos == 0) {
      if (pos_ == filled_) {
        filled_ = file_.read(in_.data(), in_.size());
        pos_ = 0;
        if (filled_ == 0) {
          QKV_CHECK(frame_done_, "{}: the zstd data is cut off", file_.path());
          return 0;
        }
      }
      ZSTD_inBuffer in{in_.data(), filled_, pos_};
      const size_t r = ZSTD_decompressStream(dctx_, &out, &in);
      QKV_CHECK(!ZSTD_isError(r), "{}: not valid zstd data ({})", file_.path(),
                ZSTD_getErrorName(r));
      pos_ = in.pos;
      frame_done_ = r == 0;
    }
    return out.pos;
  }
  CorpusSource info() override { return file_.info(); }
  int64_t bytes_read() const override { return file_.done(); }

 private:
  RawFile file_;
  ZSTD_DCtx* dctx_;
  std::vector<char> in_;
  size_t pos_ = 0, filled_ = 0;
  bool frame_done_ = true;
};

// Each line a JSON object; its `field` string, then '\n', is the text.
class JsonLinesSource : public TextSource {
 public:
  JsonLinesSource(std::unique_ptr<TextSource> bytes, std::string path, std::string field)
      : bytes_(std::move(bytes)), path_(std::move(path)), field_(std::move(field)) {}
  size_t read(char* buf, size_t n) override {
    while (text_.size() - text_pos_ < n && !ended_) next_line();
    const size_t take = std::min(n, text_.size() - text_pos_);
    std::memcpy(buf, text_.data() + text_pos_, take);
    text_pos_ += take;
    if (text_pos_ == text_.size()) text_.clear(), text_pos_ = 0;
    return take;
  }
  CorpusSource info() override { return bytes_->info(); }
  int64_t bytes_read() const override { return bytes_->bytes_read(); }
  Sha256* bytes_hash() override { return nullptr; }

 private:
  void next_line() {
    size_t nl;
    while ((nl = raw_.find('\n', raw_pos_)) == std::string::npos) {
      char chunk[1 << 16];
      const size_t got = bytes_->read(chunk, sizeof chunk);
      if (Sha256* h = bytes_->bytes_hash()) h->update(std::string_view(chunk, got));
      if (got == 0) break;
      raw_.erase(0, raw_pos_);
      raw_pos_ = 0;
      raw_.append(chunk, got);
    }
    if (nl == std::string::npos) {
      ended_ = true;
      nl = raw_.size();
      if (nl == raw_pos_) return;
    }
    const std::string_view line(raw_.data() + raw_pos_, nl - raw_pos_);
    raw_pos_ = std::min(nl + 1, raw_.size());
    ++line_;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}:{}: not a JSON line ({})", path_, line_, e.what()));
    }
    QKV_CHECK(record.is_object() && record.contains(field_) && record[field_].is_string(),
              "{}:{}: no string field \"{}\" (choose the field with --jsonl-field or "
              "data.jsonl_field)",
              path_, line_, field_);
    text_ += record[field_].get_ref<const std::string&>();
    text_ += '\n';
  }

  std::unique_ptr<TextSource> bytes_;
  std::string path_, field_, raw_, text_;
  size_t raw_pos_ = 0, text_pos_ = 0;
  int64_t line_ = 0;
  bool ended_ = false;
};

}  // namespace

std::unique_ptr<TextSource> TextSource::open(const std::string& path,
                                             const std::string& jsonl_field) {
  const bool zst = path.ends_with(".zst");
  std::unique_ptr<TextSource> bytes;
  if (zst)
    bytes = std::make_unique<ZstdSource>(path);
  else
    bytes = std::make_unique<PlainSource>(path);
  if (path.ends_with(".jsonl") || path.ends_with(".jsonl.zst"))
    return std::make_unique<JsonLinesSource>(std::move(bytes), path, jsonl_field);
  return bytes;
}

}  // namespace qkv::data
