// Writing a prepared corpus's header and publishing its directory with one rename.
#include "data/corpus_writer.h"

#include <unistd.h>

#include "data/corpus_files.h"
#include "qkv/data/sha256.h"
#include "qkv/data/utf8.h"
#include "qkv/data/vocab.h"
#include "qkv/error.h"
#include "qkv/io/durable_file.h"

namespace qkv::data {

namespace fs = std::filesystem;
using nlohmann::json;

PrepareReport::PrepareReport(const PrepareOptions& options, const std::vector<std::string>& files)
    : options_(options) {
  std::error_code ec;
  for (const std::string& f : files) total_ += int64_t(fs::file_size(f, ec));
}

double PrepareReport::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void PrepareReport::at(int64_t bytes_done) {
  const double s = seconds();
  if (!options_.progress || s < next_) return;
  options_.progress({bytes_done, total_, s, false});
  next_ = s + 1.0;
}

void PrepareReport::finished() {
  if (options_.progress && next_ > 1.0) options_.progress({total_, total_, seconds(), true});
}

json header_of(std::string_view kind, const std::vector<char32_t>& chars, const IdFile& ids,
               const std::string& ids_sums, const std::string& fingerprint,
               const std::vector<CorpusSource>& sources, const PrepareOptions& options) {
  json in_order = json::array();
  for (const char32_t cp : chars) {
    std::string c;
    append_utf8(c, cp);
    in_order.push_back(std::move(c));
  }
  json h = {{"kind", kind},
            {"chars", std::move(in_order)},
            {"vocab_sha256", sha256_hex(Vocab(chars).to_json().dump())},
            {"id_width", ids.width()},
            {"ids", ids.count()},
            {"ids_xxh3_sha256", ids_sums},
            {"fingerprint", fingerprint},
            {"jsonl_field", options.jsonl_field},
            {"sources", json::array()}};
  for (const CorpusSource& s : sources)
    h["sources"].push_back({{"path", s.path},
                            {"size", s.size},
                            {"mtime_ns", s.mtime_ns},
                            {"sha256", s.sha256},
                            {"chars", s.chars}});
  return h;
}

TempDir::TempDir(const std::string& out) {
  const fs::path target = fs::absolute(out).lexically_normal();
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  QKV_CHECK(!ec, "{}: cannot create its parent directory: {}", out, ec.message());
  QKV_CHECK(!fs::exists(target, ec) || is_prepared_corpus(target.string()),
            "{} exists and is not a prepared corpus; choose another --out", out);
  path = target.parent_path() / fmt::format(".{}.tmp-{}", target.filename().string(), ::getpid());
  fs::remove_all(path, ec);
  fs::create_directory(path, ec);
  QKV_CHECK(!ec, "{}: cannot create {}: {}", out, path.string(), ec.message());
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path.empty()) fs::remove_all(path, ec);
}

Corpus publish(TempDir& tmp, const std::string& out, const json& header) {
  io::write_file_synced(tmp.path / kCorpusHeader, corpus_json(header));
  io::sync_path(tmp.path);
  const fs::path target = fs::absolute(out).lexically_normal();
  const fs::path aside =
      target.parent_path() / fmt::format(".{}.old-{}", target.filename().string(), ::getpid());
  // A replaced corpus comes back at tmp.path (or aside), which the TempDir then removes.
  const fs::path replaced = io::rename_dir_replacing(tmp.path, target, aside);
  tmp.path = replaced;
  io::sync_path(target.parent_path());
  return Corpus::open(target.string());
}

}  // namespace qkv::data
