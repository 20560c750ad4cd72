// Corpus: opening a prepared corpus (header checks) and reading its ids in place, each
// 64 KiB block checked once per process against its checksum.
#include "qkv/data/corpus.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "data/checked_file.h"
#include "data/corpus_files.h"
#include "qkv/data/sha256.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"
#include "qkv/io/regular_file.h"

namespace qkv::data {

using nlohmann::json;

uint64_t block_checksum(const void* data, size_t n) { return XXH3_64bits(data, n); }

std::vector<uint64_t> block_checksums(std::string_view bytes) {
  std::vector<uint64_t> sums;
  for (size_t at = 0; at < bytes.size(); at += kCorpusBlockBytes)
    sums.push_back(block_checksum(bytes.data() + at,
                                  std::min<size_t>(kCorpusBlockBytes, bytes.size() - at)));
  return sums;
}

int id_width_for(int64_t n) { return n <= 256 ? 1 : n <= 65536 ? 2 : 4; }

std::string corpus_json(const json& header) {
  return json{{"format", kCorpusFormat},
              {"version", kCorpusVersion},
              {"checksum", sha256_hex(header.dump())},
              {"header", header}}
             .dump(1) +
         "\n";
}

namespace {

template <class T>
T field(const json& j, const char* key, const std::string& where) {
  QKV_CHECK(j.contains(key), "{}: no \"{}\"", where, key);
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw Error(fmt::format("{}: \"{}\" has the wrong type", where, key));
  }
}

}  // namespace

struct Corpus::State {
  Kind kind = Kind::text;
  std::string dir, fingerprint;
  std::vector<char32_t> chars;
  std::vector<CorpusSource> sources;
  int width = 1;
  int64_t size = 0, pairs = 0, max_source = 0, max_target = 0;
  std::unique_ptr<CheckedFile> ids, pair_file;
  std::vector<uint8_t> memory;       // the ids of a corpus in memory
  std::vector<int64_t> memory_spans;  // and its pairs
};

bool is_prepared_corpus(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(std::filesystem::path(dir) / kCorpusHeader, ec);
}

Corpus Corpus::open(const std::string& dir) {
  const std::string where = dir + "/" + kCorpusHeader;
  std::error_code ec;
  QKV_CHECK(std::filesystem::exists(where, ec),
            "{}: not a prepared corpus (no {}); make one with `qkv data prepare`", dir,
            kCorpusHeader);
  const std::string text = io::read_regular_file(where);
  json file;
  try {
    file = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: damaged, not JSON ({}); prepare the corpus again", where,
                            e.what()));
  }
  QKV_CHECK(file.is_object() && file.value("format", "") == kCorpusFormat,
            "{}: not a qkv corpus header", where);
  const auto version = field<int>(file, "version", where);
  QKV_CHECK(version == kCorpusVersion,
            "{}: format version {}, but this qkv reads version {}; prepare the corpus again", where,
            version, kCorpusVersion);
  const json& h = file["header"];
  QKV_CHECK(h.is_object() && sha256_hex(h.dump()) == field<std::string>(file, "checksum", where),
            "{}: damaged (its checksum does not match); prepare the corpus again", where);

  auto s = std::make_shared<State>();
  s->dir = dir;
  s->kind = field<std::string>(h, "kind", where) == "pairs" ? Kind::pairs : Kind::text;
  for (const auto& c : field<std::vector<std::string>>(h, "chars", where)) {
    const std::u32string cp = decode_utf8(c, where);
    QKV_CHECK(cp.size() == 1, "{}: a vocabulary entry holds {} characters", where, cp.size());
    s->chars.push_back(cp[0]);
  }
  std::vector<char32_t> sorted = s->chars;
  std::sort(sorted.begin(), sorted.end());
  QKV_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
            "{}: a character is listed twice in \"chars\"", where);
  s->width = field<int>(h, "id_width", where);
  QKV_CHECK(s->width == id_width_for(int64_t(s->chars.size())), "{}: id_width {} is wrong", where,
            s->width);
  s->size = field<int64_t>(h, "ids", where);
  s->fingerprint = field<std::string>(h, "fingerprint", where);
  for (const json& src : field<json>(h, "sources", where))
    s->sources.push_back({field<std::string>(src, "path", where),
                          field<int64_t>(src, "size", where), field<int64_t>(src, "mtime_ns", where),
                          field<std::string>(src, "sha256", where),
                          field<int64_t>(src, "chars", where)});
  s->ids = std::make_unique<CheckedFile>(dir + "/" + kCorpusIds, s->size * s->width,
                                         field<std::string>(h, "ids_xxh3_sha256", where));
  if (s->kind == Kind::pairs) {
    s->pairs = field<int64_t>(h, "pairs", where);
    s->max_source = field<int64_t>(h, "max_source_chars", where);
    s->max_target = field<int64_t>(h, "max_target_chars", where);
    s->pair_file = std::make_unique<CheckedFile>(dir + "/" + kCorpusPairs, (s->pairs * 3 + 1) * 8,
                                                 field<std::string>(h, "pairs_xxh3_sha256", where));
  }
  Corpus c;
  c.s_ = std::move(s);
  return c;
}

Corpus Corpus::in_memory(std::vector<char32_t> chars, const std::vector<int32_t>& ids,
                         std::string fingerprint, std::string what,
                         std::vector<int64_t> pair_spans) {
  auto s = std::make_shared<State>();
  s->sources.push_back({.path = std::move(what), .chars = int64_t(ids.size())});
  if (!pair_spans.empty()) {
    s->kind = Kind::pairs;
    s->pairs = int64_t(pair_spans.size() - 1) / 3;
    s->memory_spans = std::move(pair_spans);
    for (int64_t i = 0; i < s->pairs; ++i) {
      const int64_t* v = s->memory_spans.data() + 3 * i;
      s->max_source = std::max(s->max_source, v[1] - v[0]);
      s->max_target = std::max(s->max_target, v[3] - v[1]);
    }
  }
  s->width = id_width_for(int64_t(chars.size()));
  s->chars = std::move(chars);
  s->size = int64_t(ids.size());
  s->fingerprint = std::move(fingerprint);
  s->memory.resize(ids.size() * size_t(s->width));
  for (size_t i = 0; i < ids.size(); ++i)
    std::memcpy(s->memory.data() + i * size_t(s->width), &ids[i], size_t(s->width));
  Corpus c;
  c.s_ = std::move(s);
  return c;
}

Corpus::Kind Corpus::kind() const { return s_->kind; }
const std::string& Corpus::dir() const { return s_->dir; }
const std::vector<char32_t>& Corpus::chars() const { return s_->chars; }
int64_t Corpus::size() const { return s_->size; }
int Corpus::id_width() const { return s_->width; }
const std::string& Corpus::fingerprint() const { return s_->fingerprint; }
const std::vector<CorpusSource>& Corpus::sources() const { return s_->sources; }
int64_t Corpus::pairs() const { return s_->pairs; }
int64_t Corpus::max_source_chars() const { return s_->max_source; }
int64_t Corpus::max_target_chars() const { return s_->max_target; }

void Corpus::read(int64_t begin, int64_t n, int32_t* out) const {
  QKV_CHECK(begin >= 0 && n >= 0 && begin + n <= s_->size,
            "corpus: ids [{}, {}) are outside its {} ids", begin, begin + n, s_->size);
  if (n == 0) return;
  const size_t w = size_t(s_->width), at = size_t(begin) * w, len = size_t(n) * w;
  // Narrow ids are read into the back of out, then widened from the front: the low bytes of
  // each int32 (little-endian, as x86-64 and aarch64 are).
  uint8_t* p = reinterpret_cast<uint8_t*>(out) + (size_t(n) * 4 - len);
  if (s_->ids)
    s_->ids->read(at, len, p);
  else
    std::memcpy(p, s_->memory.data() + at, len);
  if (w == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = p[i];
  } else if (w == 2) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = v;
    }
  }
}

int64_t Corpus::find_first(const std::vector<bool>& which) const {
  std::vector<int32_t> buf(1 << 20);
  for (int64_t begin = 0; begin < s_->size; begin += int64_t(buf.size())) {
    const int64_t n = std::min<int64_t>(int64_t(buf.size()), s_->size - begin);
    read(begin, n, buf.data());
    const auto it =
        std::find_if(buf.begin(), buf.begin() + n, [&](int32_t id) { return which[size_t(id)]; });
    if (it != buf.begin() + n) return begin + (it - buf.begin());
  }
  return -1;
}

PairSpan Corpus::pair(int64_t i) const {
  QKV_CHECK(s_->kind == Kind::pairs && i >= 0 && i < s_->pairs,
            "corpus: no example {} (it has {})", i, s_->pairs);
  int64_t v[4];
  if (s_->pair_file)
    s_->pair_file->read(size_t(i) * 24, 32, reinterpret_cast<uint8_t*>(v));
  else
    std::memcpy(v, s_->memory_spans.data() + 3 * i, 32);
  return {v[0], v[1], v[3], v[2]};
}

void Corpus::check_sources() const {
  for (const CorpusSource& src : s_->sources) {
    struct stat st {};
    if (::stat(src.path.c_str(), &st) != 0) continue;
    const int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (st.st_size == src.size && mtime == src.mtime_ns) continue;
    QKV_CHECK(st.st_size == src.size && sha256_file_hex(src.path) == src.sha256,
              "{}: changed since it was prepared into {} ({} bytes then, {} now); prepare the "
              "corpus again (qkv data prepare), or train from the file itself",
              src.path, s_->dir, src.size, int64_t(st.st_size));
  }
}

}  // namespace qkv::data
