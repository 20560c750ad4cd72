// PairDataset: TSV parsing with file:line errors, and padded teacher-forcing batches.
#include "qkv/data/pair_dataset.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "data/data_file.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"

namespace qkv::data {

namespace {

struct Line {
  std::string where;  // "pairs.tsv:12"
  std::string_view src, tgt;
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
    Line l{where, line.substr(0, tab), line.substr(tab + 1)};
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

}  // namespace

PairDataset PairDataset::load(const std::string& path, const PairDatasetOptions& options) {
  return from_tsv(read_data_file(path), options, path);
}

PairDataset PairDataset::from_tsv(std::string_view tsv, const PairDatasetOptions& options,
                                  std::string_view name) {
  QKV_CHECK(options.block_size >= 2, "block_size = {} is too small for pair data (at least 2)",
            options.block_size);
  train_size(0, options.val_fraction);  // a bad fraction fails before any work
  const std::vector<Line> lines = parse_tsv(tsv, name, options.block_size);
  PairDataset ds;
  if (options.vocab) {
    const Vocab& v = *options.vocab;
    QKV_CHECK(v.has_special(kPad) && v.has_special(kBos) && v.has_special(kEos),
              "{}: pair data needs a vocabulary with <pad>, <bos> and <eos>; the given one has "
              "specials [{}]",
              name, fmt::join(v.specials(), ", "));
    ds.vocab_ = v;
  } else {
    std::u32string chars;
    for (const Line& l : lines) {
      chars += decode_utf8(l.src, l.where);
      chars += decode_utf8(l.tgt, l.where);
    }
    ds.vocab_ = Vocab(std::vector<char32_t>(chars.begin(), chars.end()), {kPad, kBos, kEos});
  }
  ds.pad_ = ds.vocab_.special_id(kPad);
  ds.bos_ = ds.vocab_.special_id(kBos);
  ds.eos_ = ds.vocab_.special_id(kEos);
  ds.examples_.reserve(lines.size());
  for (const Line& l : lines) {
    ds.examples_.push_back({ds.vocab_.encode(l.src, l.where + ": source"),
                            ds.vocab_.encode(l.tgt, l.where + ": target")});
  }
  ds.n_train_ = train_size(int64_t(ds.examples_.size()), options.val_fraction);
  return ds;
}

int64_t PairDataset::size(Split split) const {
  return split == Split::train ? n_train_ : int64_t(examples_.size()) - n_train_;
}

PairBatch PairDataset::make_batch(const std::vector<int64_t>& indices) const {
  PairBatch batch;
  batch.B = int64_t(indices.size());
  for (const int64_t i : indices) {
    batch.Ts = std::max(batch.Ts, int64_t(examples_[i].src.size()));
    batch.Tt = std::max(batch.Tt, int64_t(examples_[i].tgt.size()) + 1);
  }
  const auto Ts = batch.Ts, Tt = batch.Tt;
  batch.src.assign(size_t(batch.B * Ts), pad_);
  batch.src_padding.assign(size_t(batch.B * Ts), 1);
  batch.tgt_in.assign(size_t(batch.B * Tt), pad_);
  batch.tgt_out.assign(size_t(batch.B * Tt), -1);
  for (int64_t b = 0; b < batch.B; ++b) {
    const Example& e = examples_[indices[b]];
    std::copy(e.src.begin(), e.src.end(), batch.src.begin() + b * Ts);
    std::fill_n(batch.src_padding.begin() + b * Ts, e.src.size(), 0);
    batch.tgt_in[b * Tt] = bos_;
    std::copy(e.tgt.begin(), e.tgt.end(), batch.tgt_in.begin() + b * Tt + 1);
    std::copy(e.tgt.begin(), e.tgt.end(), batch.tgt_out.begin() + b * Tt);
    batch.tgt_out[b * Tt + int64_t(e.tgt.size())] = eos_;
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
