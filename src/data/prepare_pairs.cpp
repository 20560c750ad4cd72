// Preparing encoder-decoder pairs: a TSV's lines checked (file:line errors), their characters
// encoded as prepare_text does, and each example's spans and line in pairs.bin.
#include <algorithm>

#include "data/corpus_files.h"
#include "data/corpus_writer.h"
#include "data/pair_line.h"
#include "data/text_source.h"
#include "qkv/data/prepare.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/durable_file.h"

namespace qkv::data {

namespace {

class PairEncoder {
 public:
  PairEncoder(const std::string& dir, std::string path)
      : ids_(dir + "/" + kCorpusIds), path_(std::move(path)) {}

  void line(std::string_view line, int64_t line_no) {
    const std::optional<PairLine> p = parse_pair_line(line, path_, line_no);
    if (!p) return;
    const std::u32string& src = p->src;
    const std::u32string& tgt = p->tgt;
    spans_.insert(spans_.end(), {written_ + int64_t(pending_.size()),
                                 written_ + int64_t(pending_.size() + src.size()), line_no});
    for (const char32_t cp : src) pending_.push_back(uint32_t(table_.id(cp)));
    for (const char32_t cp : tgt) pending_.push_back(uint32_t(table_.id(cp)));
    max_src_ = std::max(max_src_, int64_t(src.size()));
    max_tgt_ = std::max(max_tgt_, int64_t(tgt.size()));
    if (pending_.size() >= (1 << 20)) flush();
  }

  void flush() {
    ids_.fit(table_.size());
    std::vector<uint8_t> bytes(pending_.size() * size_t(ids_.width()));
    narrow_ids(pending_.data(), int64_t(pending_.size()), ids_.width(), bytes.data());
    ids_.write(bytes.data(), int64_t(pending_.size()));
    written_ += int64_t(pending_.size());
    pending_.clear();
  }

  IdFile ids_;
  CharTable table_;
  std::string path_;
  std::vector<uint32_t> pending_;
  std::vector<int64_t> spans_;  // per example: src begin, tgt begin, line
  int64_t written_ = 0, max_src_ = 0, max_tgt_ = 0;
};

}  // namespace

Corpus prepare_pairs(const std::string& tsv, const std::string& out,
                     const PrepareOptions& options) {
  TempDir tmp(out);
  PairEncoder enc(tmp.path.string(), tsv);
  std::unique_ptr<TextSource> src = TextSource::open(tsv, options.jsonl_field);
  PrepareReport report(options, {tsv});
  Sha256 text_sha;
  std::string text;
  std::vector<char> buf(1 << 20);
  int64_t line_no = 0;
  for (bool more = true; more;) {
    const size_t got = src->read(buf.data(), buf.size());
    more = got > 0;
    text_sha.update(std::string_view(buf.data(), got));
    text.append(buf.data(), got);
    size_t begin = 0;
    for (size_t nl; (nl = text.find('\n', begin)) != std::string::npos; begin = nl + 1)
      enc.line(std::string_view(text).substr(begin, nl - begin), ++line_no);
    text.erase(0, begin);
    if (!more && !text.empty()) enc.line(text, ++line_no);
    report.at(src->bytes_read());
  }
  const int64_t pairs = int64_t(enc.spans_.size()) / 3;
  QKV_CHECK(pairs > 0, "{}: no examples (expected 'source<TAB>target' lines)", tsv);
  enc.flush();
  enc.spans_.push_back(enc.ids_.count());
  const std::string_view span_bytes(reinterpret_cast<const char*>(enc.spans_.data()),
                                    enc.spans_.size() * 8);
  const std::vector<uint64_t> pair_sums = block_checksums(span_bytes);
  const std::string_view pair_sum_bytes(reinterpret_cast<const char*>(pair_sums.data()),
                                        pair_sums.size() * 8);
  io::write_file_synced(tmp.path / kCorpusPairs, span_bytes);
  io::write_file_synced(tmp.path / (std::string(kCorpusPairs) + ".xxh3"), pair_sum_bytes);
  CorpusSource info = src->info();
  info.chars = enc.ids_.count();
  const std::string sums = enc.ids_.finish();
  nlohmann::json header = header_of("pairs", enc.table_.chars(), enc.ids_, sums,
                                    to_hex(text_sha.digest()), {info}, options);
  header["pairs"] = pairs;
  header["pairs_xxh3_sha256"] = sha256_hex(pair_sum_bytes);
  header["max_source_chars"] = enc.max_src_;
  header["max_target_chars"] = enc.max_tgt_;
  Corpus c = publish(tmp, out, header);
  report.finished();
  return c;
}

}  // namespace qkv::data
