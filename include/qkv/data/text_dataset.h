// TextDataset: language-model (decoder, encoder) data, nanoGPT's char-level prepare.py +
// get_batch. The corpus is prepared once and read in place (corpus.h); the first
// (1 - val_fraction) of its characters train, the rest validate. Batches are random windows
// drawn from an explicit Rng, so a saved Rng state replays the same batches.
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

struct TextDatasetOptions {
  double val_fraction = 0.1;
  // Appended to the corpus's characters when the vocab is built ({kMask} for the encoder).
  std::vector<std::string> specials = {};
  // Use this vocab (from a checkpoint) instead of building one; specials is then ignored.
  std::optional<Vocab> vocab = std::nullopt;
  // How raw text is prepared and where it is cached (open_corpus).
  CorpusOptions corpus = {};
};

// B rows of T ids, row-major [B, T], and the id each position is to predict (-1: none): the
// next character (get_batch), or the hidden one (get_masked_batch in qkv/data/masking.h).
struct Batch {
  std::vector<int32_t> inputs, targets;
  int64_t B = 0, T = 0;
};

class TextDataset {
 public:
  // The corpus data.path names (open_corpus: a prepared corpus, or files, directories and
  // globs of text prepared into the cache), its files' characters in order (nothing is
  // inserted between them). Errors: "data.path 'x' does not exist", invalid UTF-8 or (with a
  // given vocab) an unknown character, each naming the file and the byte or character
  // position in it.
  static TextDataset load(const std::vector<std::string>& paths,
                          const TextDatasetOptions& options = {});
  static TextDataset from_corpus(Corpus corpus, const TextDatasetOptions& options = {});
  // The same from text in memory; errors name `what`.
  static TextDataset from_text(std::string_view text, const TextDatasetOptions& options = {},
                               std::string_view what = "text");

  const Vocab& vocab() const { return vocab_; }
  const Corpus& corpus() const { return corpus_; }
  int64_t size(Split split) const { return split == Split::train ? n_train_ : n_ - n_train_; }
  // ids [begin, begin + n) of the split, in the vocabulary's numbering, into out.
  void read(Split split, int64_t begin, int64_t n, int32_t* out) const;
  // A copy of ids [begin, begin + n) of the split; n = -1: to its end.
  std::vector<int32_t> ids(Split split, int64_t begin = 0, int64_t n = -1) const;
  // SHA-256 (hex) of the whole corpus's bytes, both splits: a checkpoint stores it so that
  // resuming on different data is noticed.
  const std::string& fingerprint() const { return corpus_.fingerprint(); }

  // nanoGPT's get_batch: B window starts drawn first, each rng.below(n - T) over the split's
  // n characters, then row b = split[start_b, start_b + T), targets shifted by one. Throws
  // qkv::Error when the split has fewer than T + 1 characters.
  Batch get_batch(Split split, int64_t B, int64_t T, Rng& rng) const;

 private:
  TextDataset() = default;

  Corpus corpus_;
  Vocab vocab_;
  std::vector<int32_t> to_vocab_;  // corpus id -> vocab id, when they differ
  int64_t n_ = 0, n_train_ = 0;
};

}  // namespace qkv::data
