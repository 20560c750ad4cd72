// PairDataset: sequence-to-sequence data from a TSV of "source<TAB>target" lines, batched for
// teacher forcing: the decoder reads <bos> + target and predicts target + <eos>.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/data/corpus.h"
#include "qkv/data/prepare.h"
#include "qkv/data/split.h"
#include "qkv/data/vocab.h"
#include "qkv/rng.h"

namespace qkv::data {

struct PairDatasetOptions {
  double val_fraction = 0.1;  // the last examples of the file validate
  // Longest sequence the model takes: a source of up to block_size characters, a target of
  // up to block_size - 1 (one position goes to <bos> / <eos>).
  int64_t block_size = 64;
  // Use this vocab (from a checkpoint) instead of building one; it must hold <pad>, <bos>,
  // <eos>.
  std::optional<Vocab> vocab = std::nullopt;
  // How a raw TSV is prepared and where it is cached (open_corpus); pairs is set by load.
  CorpusOptions corpus = {};
};

// Row-major [B, Ts] and [B, Tt]; Ts, Tt are the longest source and target (+1) in the batch.
struct PairBatch {
  std::vector<int32_t> src;          // source ids, then <pad>
  std::vector<uint8_t> src_padding;  // 1 where src is <pad> (the encoder's key padding mask)
  std::vector<int32_t> tgt_in;       // <bos>, target ids, then <pad>
  std::vector<int32_t> tgt_out;      // target ids, <eos>, then -1 (the loss's ignore_index)
  int64_t B = 0, Ts = 0, Tt = 0;
};

class PairDataset {
 public:
  // A UTF-8 TSV (prepared into the cache once, see open_corpus), or a prepared pair corpus.
  // Empty lines are skipped; a trailing '\r' is dropped. Errors name file:line: a line
  // without exactly one tab, an empty source, a pair too long for block_size, invalid UTF-8,
  // or (with a given vocab) an unknown character. Without a vocab one is built from every
  // character of every source and target, plus <pad>, <bos>, <eos>.
  static PairDataset load(const std::string& path, const PairDatasetOptions& options = {});
  static PairDataset from_corpus(Corpus corpus, const PairDatasetOptions& options = {});
  // The same from TSV text in memory; errors name `name` as the file.
  static PairDataset from_tsv(std::string_view tsv, const PairDatasetOptions& options = {},
                              std::string_view name = "pairs");

  const Vocab& vocab() const { return vocab_; }
  const Corpus& corpus() const { return corpus_; }
  int64_t size(Split split) const;
  int32_t pad_id() const { return pad_; }
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }

  // B examples of the split, each drawn with rng.below(size) (with replacement, like the LM
  // windows). Throws qkv::Error when the split is empty.
  PairBatch get_batch(Split split, int64_t B, Rng& rng) const;

  // Every example of a split in file order, B at a time (the last batch may be smaller):
  //   for (auto it = data.sequential(Split::val, 32); auto batch = it.next();) ...
  // The iterator refers to the dataset, which must outlive it.
  class Sequential {
   public:
    std::optional<PairBatch> next();

   private:
    friend class PairDataset;
    Sequential(const PairDataset& data, Split split, int64_t B);
    const PairDataset* data_;
    int64_t first_, end_, B_;
  };
  Sequential sequential(Split split, int64_t B) const;

 private:
  PairDataset() = default;
  PairBatch make_batch(const std::vector<int64_t>& indices) const;
  // Example i's ids in the vocabulary's numbering.
  std::vector<int32_t> read(int64_t begin, int64_t end) const;

  Corpus corpus_;  // train examples, then val examples, in file order
  Vocab vocab_;
  std::vector<int32_t> to_vocab_;  // corpus id -> vocab id, when they differ
  int64_t n_train_ = 0;
  int32_t pad_ = 0, bos_ = 0, eos_ = 0;
};

}  // namespace qkv::data
