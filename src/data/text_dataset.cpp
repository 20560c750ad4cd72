// TextDataset: load, encode, split, and nanoGPT's random-window batches.
#include "qkv/data/text_dataset.h"

#include <algorithm>

#include "data/data_file.h"
#include "qkv/data/sha256.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"

namespace qkv::data {

TextDataset TextDataset::load(const std::vector<std::string>& paths,
                              const TextDatasetOptions& options) {
  QKV_CHECK(!paths.empty(), "data.path: no text file given");
  std::vector<Source> sources;
  for (const std::string& path : paths)
    sources.push_back({fmt::format("data.path '{}'", path), read_data_file(path)});
  return build(sources, options);
}

TextDataset TextDataset::from_text(std::string_view text, const TextDatasetOptions& options,
                                   std::string_view what) {
  return build({{std::string(what), std::string(text)}}, options);
}

TextDataset TextDataset::build(const std::vector<Source>& sources,
                               const TextDatasetOptions& options) {
  train_size(0, options.val_fraction);  // a bad fraction fails before any work
  TextDataset ds;
  if (options.vocab) {
    ds.vocab_ = *options.vocab;
  } else {
    // Marking seen code points in a table keeps vocab building linear in the corpus size.
    std::vector<bool> seen(0x110000);
    for (const Source& s : sources)
      for (const char32_t cp : decode_utf8(s.bytes, s.what)) seen[cp] = true;
    std::vector<char32_t> chars;
    for (char32_t cp = 0; cp < seen.size(); ++cp)
      if (seen[cp]) chars.push_back(cp);
    ds.vocab_ = Vocab(std::move(chars), options.specials);
  }
  Sha256 sha;
  for (const Source& s : sources) {
    const std::vector<int32_t> ids = ds.vocab_.encode(s.bytes, s.what);
    ds.ids_.insert(ds.ids_.end(), ids.begin(), ids.end());
    sha.update(s.bytes);
  }
  QKV_CHECK(!ds.ids_.empty(), "{}: the corpus is empty",
            sources.size() == 1 ? sources[0].what : std::string("data.path"));
  ds.n_train_ = train_size(int64_t(ds.ids_.size()), options.val_fraction);
  ds.fingerprint_ = to_hex(sha.digest());
  return ds;
}

std::span<const int32_t> TextDataset::ids(Split split) const {
  const std::span<const int32_t> all(ids_);
  return split == Split::train ? all.first(size_t(n_train_)) : all.subspan(size_t(n_train_));
}

Batch TextDataset::get_batch(Split split, int64_t B, int64_t T, Rng& rng) const {
  QKV_CHECK(B > 0 && T > 0, "get_batch: batch_size = {} and block_size = {} must be positive", B,
            T);
  const std::span<const int32_t> data = ids(split);
  const auto n = int64_t(data.size());
  check_split_length(split, n, T + 1, "block_size+1");
  std::vector<int64_t> starts(static_cast<size_t>(B));
  for (int64_t& start : starts) start = int64_t(rng.below(uint64_t(n - T)));
  Batch batch{std::vector<int32_t>(size_t(B * T)), std::vector<int32_t>(size_t(B * T)), B, T};
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* row = data.data() + starts[size_t(b)];
    std::copy_n(row, T, batch.inputs.begin() + b * T);
    std::copy_n(row + 1, T, batch.targets.begin() + b * T);
  }
  return batch;
}

}  // namespace qkv::data
