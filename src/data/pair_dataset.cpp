// PairDataset: TSV parsing with file:line errors, and padded teacher-forcing batches.
#include "qkv/data/pair_dataset.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "data/pair_line.h"
#include "data/vocab_map.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"

namespace qkv::data {

namespace {

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
    check_pair_length(file, p.line, p.tgt_begin - p.src_begin, p.end - p.tgt_begin, block_size);
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
  std::u32string text;
  std::vector<int64_t> spans;
  int64_t line_no = 0;
  for (size_t begin = 0; begin < tsv.size();) {
    const size_t end = std::min(tsv.find('\n', begin), tsv.size());
    const std::optional<PairLine> p = parse_pair_line(tsv.substr(begin, end - begin), name, ++line_no);
    begin = end + 1;
    if (!p) continue;
    check_pair_length(name, line_no, int64_t(p->src.size()), int64_t(p->tgt.size()),
                      options.block_size);
    spans.insert(spans.end(), {int64_t(text.size()), int64_t(text.size() + p->src.size()), line_no});
    text += p->src;
    text += p->tgt;
  }
  QKV_CHECK(!spans.empty(), "{}: no examples (expected 'source<TAB>target' lines)", name);
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
