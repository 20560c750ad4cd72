// PairDataset: TSV parsing with file:line errors, and padded teacher-forcing batches.
#include "qkv/data/pair_dataset.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "data/vocab_map.h"
#include "qkv/data/sha256.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"

namespace qkv::data {

namespace {

struct Line {
  std::string where;  // "pairs.tsv:12"
  std::string_view src, tgt;
  int64_t line = 0;
};

// Splits the TSV into (source, target) fields, checking each line's shape and lengths.
std::vector<Line> parse_tsv(std::string_view tsv, std::string_view name, int64_t block_size) {
  std::vector<Line> lines;
  int64_t line_no = 0;
  for (size_t begin = 0; begin < tsv.size();) {
    size_t end = tsv.find('\n', begin);
    if (end == std::string_view::npos) end = tsv.size();
    std::string_view line = tsv.substr(begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string where = fmt::format("{}:{}", name, line_no);
    const auto tabs = std::count(line.begin(), line.end(), '\t');
    QKV_CHECK(tabs == 1, "{}: expected 'source<TAB>target', found {}", where,
              tabs == 0 ? std::string("no tab") : fmt::format("{} tabs", tabs));
    const size_t tab = line.find('\t');
    Line l{where, line.substr(0, tab), line.substr(tab + 1), line_no};
    const size_t src_len = decode_utf8(l.src, where).size();
    const size_t tgt_len = decode_utf8(l.tgt, where).size();
    QKV_CHECK(src_len > 0, "{}: the source is empty", where);
    QKV_CHECK(int64_t(src_len) <= block_size,
              "{}: the source has {} characters, more than block_size = {}", where, src_len,
              block_size);
    QKV_CHECK(int64_t(tgt_len) + 1 <= block_size,
              "{}: the target has {} characters, more than block_size-1 = {} (one position goes "
              "to <bos>/<eos>)",
              where, tgt_len, block_size - 1);
    lines.push_back(std::move(l));
  }
  QKV_CHECK(!lines.empty(), "{}: no examples (expected 'source<TAB>target' lines)", name);
  return lines;
}


// The TSV a pair corpus was prepared from, for error messages.
std::string file_of(const Corpus& c) {
  return c.sources().empty() ? std::string("pairs") : c.sources()[0].path;
}

// The example that holds corpus position `at`.
PairSpan example_at(const Corpus& c, int64_t at) {
  int64_t lo = 0, hi = c.pairs() - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (c.pair(mid).src_begin <= at)
      lo = mid;
    else
      hi = mid - 1;
  }
  return c.pair(lo);
}

// Throws the TSV's own error for the first example longer than block_size allows.
void check_lengths(const Corpus& c, int64_t block_size) {
  if (c.max_source_chars() <= block_size && c.max_target_chars() + 1 <= block_size) return;
  const std::string file = file_of(c);
  for (int64_t i = 0; i < c.pairs(); ++i) {
    const PairSpan p = c.pair(i);
    QKV_CHECK(p.tgt_begin - p.src_begin <= block_size,
              "{}:{}: the source has {} characters, more than block_size = {}", file, p.line,
              p.tgt_begin - p.src_begin, block_size);
    QKV_CHECK(p.end - p.tgt_begin + 1 <= block_size,
              "{}:{}: the target has {} characters, more than block_size-1 = {} (one position "
              "goes to <bos>/<eos>)",
              file, p.line, p.end - p.tgt_begin, block_size - 1);
  }
}

}  // namespace

PairDataset PairDataset::load(const std::string& path, const PairDatasetOptions& options) {
  QKV_CHECK(options.block_size >= 2, "block_size = {} is too small for pair data (at least 2)",
            options.block_size);
  train_size(0, options.val_fraction);  // a bad fraction fails before any work
  CorpusOptions corpus = options.corpus;
  corpus.pairs = true;
  return from_corpus(open_corpus({path}, corpus), options);
}

PairDataset PairDataset::from_tsv(std::string_view tsv, const PairDatasetOptions& options,
                                  std::string_view name) {
  QKV_CHECK(options.block_size >= 2, "block_size = {} is too small for pair data (at least 2)",
            options.block_size);
  train_size(0, options.val_fraction);
  const std::vector<Line> lines = parse_tsv(tsv, name, options.block_size);
  std::u32string text;
  std::vector<int64_t> spans;
  for (const Line& l : lines) {
    spans.push_back(int64_t(text.size()));
    text += decode_utf8(l.src, l.where);
    spans.push_back(int64_t(text.size()));
    spans.push_back(l.line);
    text += decode_utf8(l.tgt, l.where);
  }
  spans.push_back(int64_t(text.size()));
  const Vocab own(std::vector<char32_t>(text.begin(), text.end()));
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = own.id_of(text[i]);
  return from_corpus(
      Corpus::in_memory(own.chars(), ids, sha256_hex(tsv), std::string(name), std::move(spans)),
      options);
}

PairDataset PairDataset::from_corpus(Corpus corpus, const PairDatasetOptions& options) {
  QKV_CHECK(corpus.kind() == Corpus::Kind::pairs, "{}: a corpus of text, not of pairs",
            corpus.dir());
  check_lengths(corpus, options.block_size);
  PairDataset ds;
  ds.corpus_ = std::move(corpus);
  if (options.vocab) {
    const Vocab& v = *options.vocab;
    QKV_CHECK(v.has_special(kPad) && v.has_special(kBos) && v.has_special(kEos),
              "{}: pair data needs a vocabulary with <pad>, <bos> and <eos>; the given one has "
              "specials [{}]",
              file_of(ds.corpus_),
              fmt::join(v.specials(), ", "));
    ds.vocab_ = v;
  } else {
    ds.vocab_ = Vocab(ds.corpus_.chars(), {kPad, kBos, kEos});
  }
  ds.to_vocab_ = vocab_ids(ds.corpus_, ds.vocab_, [&](int64_t at, char32_t cp) {
    const PairSpan p = example_at(ds.corpus_, at);
    const bool source = at < p.tgt_begin;
    ds.vocab_.throw_unknown(cp, at - (source ? p.src_begin : p.tgt_begin),
                            fmt::format("{}:{}: {}", file_of(ds.corpus_), p.line,
                                        source ? "source" : "target"));
  });
  ds.pad_ = ds.vocab_.special_id(kPad);
  ds.bos_ = ds.vocab_.special_id(kBos);
  ds.eos_ = ds.vocab_.special_id(kEos);
  ds.n_train_ = train_size(ds.corpus_.pairs(), options.val_fraction);
  return ds;
}

int64_t PairDataset::size(Split split) const {
  return split == Split::train ? n_train_ : corpus_.pairs() - n_train_;
}

std::vector<int32_t> PairDataset::read(int64_t begin, int64_t end) const {
  std::vector<int32_t> ids(size_t(end - begin));
  corpus_.read(begin, end - begin, ids.data());
  if (!to_vocab_.empty())
    for (int32_t& id : ids) id = to_vocab_[size_t(id)];
  return ids;
}

PairBatch PairDataset::make_batch(const std::vector<int64_t>& indices) const {
  PairBatch batch;
  batch.B = int64_t(indices.size());
  std::vector<PairSpan> spans;
  for (const int64_t i : indices) {
    spans.push_back(corpus_.pair(i));
    batch.Ts = std::max(batch.Ts, spans.back().tgt_begin - spans.back().src_begin);
    batch.Tt = std::max(batch.Tt, spans.back().end - spans.back().tgt_begin + 1);
  }
  const auto Ts = batch.Ts, Tt = batch.Tt;
  batch.src.assign(size_t(batch.B * Ts), pad_);
  batch.src_padding.assign(size_t(batch.B * Ts), 1);
  batch.tgt_in.assign(size_t(batch.B * Tt), pad_);
  batch.tgt_out.assign(size_t(batch.B * Tt), -1);
  for (int64_t b = 0; b < batch.B; ++b) {
    const PairSpan& p = spans[size_t(b)];
    const std::vector<int32_t> src = read(p.src_begin, p.tgt_begin), tgt = read(p.tgt_begin, p.end);
    std::copy(src.begin(), src.end(), batch.src.begin() + b * Ts);
    std::fill_n(batch.src_padding.begin() + b * Ts, src.size(), 0);
    batch.tgt_in[b * Tt] = bos_;
    std::copy(tgt.begin(), tgt.end(), batch.tgt_in.begin() + b * Tt + 1);
    std::copy(tgt.begin(), tgt.end(), batch.tgt_out.begin() + b * Tt);
    batch.tgt_out[b * Tt + int64_t(tgt.size())] = eos_;
  }
  return batch;
}

PairBatch PairDataset::get_batch(Split split, int64_t B, Rng& rng) const {
  QKV_CHECK(B > 0, "get_batch: batch_size = {} must be positive", B);
  const int64_t n = size(split);
  QKV_CHECK(n > 0, "{} split has no examples; {}", split_name(split),
            split == Split::val ? "raise data.val_fraction" : "lower data.val_fraction");
  const int64_t first = split == Split::train ? 0 : n_train_;
  std::vector<int64_t> indices(static_cast<size_t>(B));
  for (int64_t& i : indices) i = first + int64_t(rng.below(uint64_t(n)));
  return make_batch(indices);
}

PairDataset::Sequential::Sequential(const PairDataset& data, Split split, int64_t B)
    : data_(&data),
      first_(split == Split::train ? 0 : data.n_train_),
      end_(first_ + data.size(split)),
      B_(B) {
  QKV_CHECK(B > 0, "sequential: batch_size = {} must be positive", B);
}

std::optional<PairBatch> PairDataset::Sequential::next() {
  if (first_ >= end_) return std::nullopt;
  std::vector<int64_t> indices;
  for (; first_ < end_ && int64_t(indices.size()) < B_; ++first_) indices.push_back(first_);
  return data_->make_batch(indices);
}

PairDataset::Sequential PairDataset::sequential(Split split, int64_t B) const {
  return Sequential(*this, split, B);
}

}  // namespace qkv::data
