// TextDataset: a corpus in the vocabulary's numbering, split, and nanoGPT's random windows.
#include "qkv/data/text_dataset.h"

#include <algorithm>

#include "data/vocab_map.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"

namespace qkv::data {

namespace {

// Where corpus position `at` is: the source file and the character position in it.
std::pair<std::string, int64_t> source_position(const Corpus& corpus, int64_t at,
                                                std::string_view what) {
  for (const CorpusSource& s : corpus.sources()) {
    // A corpus in memory is named by its caller; a file by the key it came from.
    if (at < s.chars) return {corpus.dir().empty() ? s.path : fmt::format("data.path '{}'", s.path), at};
    at -= s.chars;
  }
  return {std::string(what), at};
}

}  // namespace

TextDataset TextDataset::load(const std::vector<std::string>& paths,
                              const TextDatasetOptions& options) {
  QKV_CHECK(!paths.empty(), "data.path: no text file given");
  train_size(0, options.val_fraction);  // a bad fraction fails before any work
  return from_corpus(open_corpus(paths, options.corpus), options);
}

TextDataset TextDataset::from_text(std::string_view text, const TextDatasetOptions& options,
                                   std::string_view what) {
  train_size(0, options.val_fraction);
  const Vocab own = Vocab::from_text(text, {}, what);
  return from_corpus(
      Corpus::in_memory(own.chars(), own.encode(text, what), sha256_hex(text), std::string(what)),
      options);
}

TextDataset TextDataset::from_corpus(Corpus corpus, const TextDatasetOptions& options) {
  QKV_CHECK(corpus.kind() == Corpus::Kind::text, "{}: a corpus of pairs, not of text",
            corpus.dir());
  TextDataset ds;
  ds.corpus_ = std::move(corpus);
  ds.vocab_ = options.vocab ? *options.vocab : Vocab(ds.corpus_.chars(), options.specials);
  ds.to_vocab_ = vocab_ids(ds.corpus_, ds.vocab_, [&](int64_t at, char32_t cp) {
    const auto [where, position] = source_position(ds.corpus_, at, "text");
    ds.vocab_.throw_unknown(cp, position, where);
  });
  ds.n_ = ds.corpus_.size();
  QKV_CHECK(ds.n_ > 0, "data.path: the corpus is empty");
  ds.n_train_ = train_size(ds.n_, options.val_fraction);
  return ds;
}

void TextDataset::read(Split split, int64_t begin, int64_t n, int32_t* out) const {
  QKV_CHECK(begin >= 0 && n >= 0 && begin + n <= size(split),
            "text dataset: ids [{}, {}) are outside the {} split of {}", begin, begin + n,
            split_name(split), size(split));
  corpus_.read(split == Split::train ? begin : n_train_ + begin, n, out);
  if (!to_vocab_.empty())
    for (int64_t i = 0; i < n; ++i) out[i] = to_vocab_[size_t(out[i])];
}

std::vector<int32_t> TextDataset::ids(Split split, int64_t begin, int64_t n) const {
  if (n < 0) n = size(split) - begin;
  std::vector<int32_t> out(size_t(std::max<int64_t>(n, 0)));
  read(split, begin, n, out.data());
  return out;
}

Batch TextDataset::get_batch(Split split, int64_t B, int64_t T, Rng& rng) const {
  QKV_CHECK(B > 0 && T > 0, "get_batch: batch_size = {} and block_size = {} must be positive", B,
            T);
  const int64_t n = size(split);
  check_split_length(split, n, T + 1, "block_size+1");
  std::vector<int64_t> starts(static_cast<size_t>(B));
  for (int64_t& start : starts) start = int64_t(rng.below(uint64_t(n - T)));
  Batch batch{std::vector<int32_t>(size_t(B * T)), std::vector<int32_t>(size_t(B * T)), B, T};
  std::vector<int32_t> window(size_t(T + 1));
  for (int64_t b = 0; b < B; ++b) {
    read(split, starts[size_t(b)], T + 1, window.data());
    std::copy_n(window.begin(), T, batch.inputs.begin() + b * T);
    std::copy_n(window.begin() + 1, T, batch.targets.begin() + b * T);
  }
  return batch;
}

}  // namespace qkv::data
