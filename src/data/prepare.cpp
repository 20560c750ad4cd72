// Preparing a corpus: inputs expanded, each file's text decoded and encoded in parallel chunks
// (split at character boundaries) while one thread hashes it, then renumbered, checksummed and
// published with one rename.
#include "qkv/data/prepare.h"

#include <glob.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <unordered_map>

#include "data/corpus_files.h"
#include "data/corpus_writer.h"
#include "data/id_file.h"
#include "data/text_source.h"
#include "qkv/data/sha256.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"

namespace qkv::data {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs,
                                       std::string_view what) {
  QKV_CHECK(!inputs.empty(), "{}: no input given", what);
  std::vector<std::string> files;
  auto add_file = [&](const fs::path& p, const std::string& input) {
    std::error_code ec;
    const auto st = fs::status(p, ec);
    // A symlink loop or a directory that cannot be searched is no "does not exist".
    QKV_CHECK(!ec || ec == std::errc::no_such_file_or_directory, "{} '{}' cannot be read: {}",
              what, input, ec.message());
    QKV_CHECK(fs::exists(st), "{} '{}' does not exist; set {}, or make a corpus with a script in "
              "data/ (see data/README.md)", what, input, what);
    QKV_CHECK(fs::is_regular_file(st),
              "{} '{}' is not a regular file (a FIFO, device or socket); it must name a text "
              "file, a directory or a glob",
              what, input);
    files.push_back(fs::absolute(p).lexically_normal().string());
  };
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(input, ec); !ec && it != fs::end(it);
           it.increment(ec)) {
        if (it->path().filename().string().starts_with(".")) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) found.push_back(it->path());
      }
      QKV_CHECK(!ec, "{} '{}': cannot list the directory: {}", what, input, ec.message());
      QKV_CHECK(!found.empty(), "{} '{}' is a directory with no files", what, input);
      std::sort(found.begin(), found.end());
      for (const fs::path& p : found) add_file(p, p.string());
    } else if (input.find_first_of("*?[") != std::string::npos && !fs::exists(input, ec)) {
      glob_t g{};
      const int r = ::glob(input.c_str(), GLOB_ERR, nullptr, &g);
      std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + (r == 0 ? g.gl_pathc : 0));
      ::globfree(&g);
      QKV_CHECK(!matches.empty(), "{} '{}': the pattern matches no file", what, input);
      std::sort(matches.begin(), matches.end());
      for (const std::string& m : matches) add_file(m, m);
    } else {
      add_file(input, input);
    }
  }
  return files;
}

namespace {

// Small enough that a chunk's text and ids stay in the caches between decoding and writing.
constexpr size_t kChunkBytes = 4 << 20;

// The first invalid byte of a chunk, from whichever thread found it.
struct FirstError {
  size_t at = SIZE_MAX;
  void offer(size_t i) {
#pragma omp critical(qkv_prepare_error)
    at = std::min(at, i);
  }
};

// One part of a chunk, encoded on its own: ids numbered in the order the part first sees each
// character (its `chars`), renumbered into the corpus's ids once the parts before it are known,
// so that the corpus's numbering is the text's first-seen order whatever the threads did.
struct Part {
  std::vector<char32_t> chars;    // local id -> character
  std::vector<uint32_t> to_corpus;  // local id -> corpus id
  int64_t count = 0;              // ids
};

// Encodes text[begin, end) (begin at a character) into local ids; records the first invalid
// byte instead, leaving the part empty.
void encode_range(std::string_view text, size_t begin, size_t end, uint32_t* out, Part& part,
                  FirstError& error) {
  int32_t ascii[128];
  std::fill(std::begin(ascii), std::end(ascii), -1);
  std::unordered_map<char32_t, int32_t> other;
  part.chars.clear();
  auto local = [&](char32_t cp, int32_t& id) {
    if (id < 0) {
      id = int32_t(part.chars.size());
      part.chars.push_back(cp);
    }
    return uint32_t(id);
  };
  int64_t n = 0;
  for (size_t i = begin; i < end;) {
    const auto byte = uint8_t(text[i]);
    if (byte < 0x80) {
      out[n++] = local(byte, ascii[byte]);
      ++i;
      continue;
    }
    const Utf8Char c = decode_utf8_char(text, i);
    if (c.len == 0) {
      error.offer(i);
      part.count = 0;
      return;
    }
    out[n++] = local(c.cp, other.try_emplace(c.cp, -1).first->second);
    i += size_t(c.len);
  }
  part.count = n;
}

// Where a chunk may be cut: after its last whole character.
size_t whole_characters(std::string_view text) {
  const size_t n = text.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto byte = uint8_t(text[n - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const size_t len = byte < 0x80 ? 1 : byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
    return len > back ? n - back : n;
  }
  return n;
}

// Streams every file's text through the encoder into ids.bin.
class TextEncoder {
 public:
  TextEncoder(const std::string& ids_path, const PrepareOptions& options,
              const std::vector<std::string>& files)
      : ids_(ids_path), options_(options), report_(options, files) {}

  CorpusSource add(const std::string& path) {
    std::unique_ptr<TextSource> src = TextSource::open(path, options_.jsonl_field);
    std::vector<char> buf(kChunkBytes);
    size_t carry = 0;
    int64_t offset = 0, chars = 0;
    const std::string what = fmt::format("{} '{}'", options_.what, path);
    for (;;) {
      size_t filled = carry, got = 1;
      while (filled < buf.size() && (got = src->read(buf.data() + filled, buf.size() - filled)))
        filled += got;
      const bool last = got == 0;
      const std::string_view text(buf.data(), filled);
      const size_t cut = last ? filled : whole_characters(text);
      chars += encode_chunk(text.substr(0, cut), what, offset, src->bytes_hash());
      report_.at(done_ + src->bytes_read());
      offset += int64_t(cut);
      carry = filled - cut;
      std::copy(buf.begin() + ptrdiff_t(cut), buf.begin() + ptrdiff_t(filled), buf.begin());
      if (last) break;
    }
    done_ += src->bytes_read();
    CorpusSource info = src->info();
    info.chars = chars;
    return info;
  }

  IdFile& ids() {
    write_pending();
    return ids_;
  }
  CharTable& table() { return table_; }
  std::string fingerprint() { return to_hex(text_sha_.digest()); }
  void finished() { report_.finished(); }

 private:
  // Encodes one chunk while a thread hashes it (the corpus text; and the file's bytes, where
  // they are the text: bytes_hash).
  int64_t encode_chunk(std::string_view text, const std::string& what, int64_t offset,
                       Sha256* bytes_hash) {
    const int parts = std::max(1, omp_get_max_threads() * 4);
    std::vector<size_t> cuts{0};
    for (int p = 1; p < parts; ++p) {
      size_t c = std::max(cuts.back(), text.size() * size_t(p) / size_t(parts));
      while (c < text.size() && (uint8_t(text[c]) & 0xC0) == 0x80) ++c;
      cuts.push_back(c);
    }
    cuts.push_back(text.size());
    if (capacity_ < text.size()) {  // no zero-filling: every id used is written first
      write_pending();
      ids32_.reset(new uint32_t[text.size()]);
      for (auto& b : bytes_) b.reset(new uint8_t[text.size() * 4]);
      capacity_ = text.size();
    }
    uint8_t* out = bytes_[chunks_++ % 2].get();
    parts_.resize(size_t(parts));
    std::vector<int64_t> starts(static_cast<size_t>(parts) + 1);
    FirstError error;
    // An exception must not leave an OpenMP region: the first is kept and thrown after it.
    std::exception_ptr failed;
    auto guard = [&failed](auto&& work) {
      try {
        work();
      } catch (...) {
#pragma omp critical(qkv_prepare_failed)
        if (!failed) failed = std::current_exception();
      }
    };
#pragma omp parallel
    {
#pragma omp single nowait
      guard([&] { text_sha_.update(text); });
#pragma omp single nowait
      guard([&] {
        if (bytes_hash) bytes_hash->update(text);
      });
#pragma omp single nowait
      guard([&] { write_pending(); });  // the last chunk's ids, while this one is encoded
#pragma omp for schedule(dynamic, 1)
      for (int p = 0; p < parts; ++p)
        encode_range(text, cuts[size_t(p)], cuts[size_t(p) + 1], ids32_.get() + cuts[size_t(p)],
                     parts_[size_t(p)], error);
#pragma omp single
      {
        for (int p = 0; p < parts; ++p) {  // in text order: the corpus's first-seen order
          Part& part = parts_[size_t(p)];
          part.to_corpus.resize(part.chars.size());
          for (size_t l = 0; l < part.chars.size(); ++l)
            part.to_corpus[l] = uint32_t(table_.id(part.chars[l]));
          starts[size_t(p) + 1] = starts[size_t(p)] + part.count;
        }
        if (error.at == SIZE_MAX && id_width_for(table_.size()) > ids_.width())
          guard([&] { ids_.fit(table_.size()); });  // the file so far is rewritten wider
      }
      if (error.at == SIZE_MAX) {
#pragma omp for schedule(static)
        for (int p = 0; p < parts; ++p) {
          const Part& part = parts_[size_t(p)];
          uint32_t* ids = ids32_.get() + cuts[size_t(p)];
          for (int64_t k = 0; k < part.count; ++k) ids[k] = part.to_corpus[ids[k]];
          narrow_ids(ids, part.count, ids_.width(), out + starts[size_t(p)] * ids_.width());
        }
      }
    }
    if (failed) std::rethrow_exception(failed);
    if (error.at != SIZE_MAX) throw_invalid_utf8(text, error.at, what, offset);
    pending_ = {out, starts.back()};
    return starts.back();
  }

  IdFile ids_;
  CharTable table_;
  Sha256 text_sha_;
  const PrepareOptions& options_;
  PrepareReport report_;
  int64_t done_ = 0;
  // Scratch for one chunk: its ids as decoded, then narrowed.
  std::vector<Part> parts_;
  std::unique_ptr<uint32_t[]> ids32_;
  std::unique_ptr<uint8_t[]> bytes_[2];
  size_t capacity_ = 0;
  int64_t chunks_ = 0;
  // A chunk's narrowed ids wait to be written by a thread of the next chunk's encoding: the
  // write is a copy into the page cache as long as the encoding itself.
  struct {
    const uint8_t* bytes = nullptr;
    int64_t ids = 0;
  } pending_;
  void write_pending() {
    if (pending_.ids > 0) ids_.write(pending_.bytes, pending_.ids);
    pending_ = {};
  }
};

}  // namespace

Corpus prepare_text(const std::vector<std::string>& files, const std::string& out,
                    const PrepareOptions& options) {
  TempDir tmp(out);
  TextEncoder enc((tmp.path / kCorpusIds).string(), options, files);
  std::vector<CorpusSource> sources;
  for (const std::string& f : files) sources.push_back(enc.add(f));
  QKV_CHECK(enc.ids().count() > 0, "{}: the corpus is empty",
            files.size() == 1 ? fmt::format("{} '{}'", options.what, files[0]) : options.what);
  const std::string sums = enc.ids().finish();
  const json header = header_of("text", enc.table().chars(), enc.ids(), sums,
                                enc.fingerprint(), sources, options);
  Corpus c = publish(tmp, out, header);
  enc.finished();
  return c;
}

}  // namespace qkv::data
