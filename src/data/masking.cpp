// Masked-character batches: BERT's selection and 80/10/10 replacement, over characters.
#include "qkv/data/masking.h"

#include <algorithm>

#include "qkv/data/utf8.h"
#include "qkv/error.h"

namespace qkv::data {

namespace {

void check_options(const MaskingOptions& o) {
  QKV_CHECK(o.select_prob > 0 && o.select_prob <= 1, "masking: select_prob = {} is outside (0, 1]",
            o.select_prob);
  QKV_CHECK(o.mask_prob >= 0 && o.random_prob >= 0 && o.mask_prob + o.random_prob <= 1,
            "masking: mask_prob = {} and random_prob = {} must be >= 0 with a sum <= 1",
            o.mask_prob, o.random_prob);
}

int32_t replacement(int32_t original, int32_t mask_id, int64_t n_chars, Rng& rng,
                    const MaskingOptions& o) {
  const double r = rng.uniform();
  if (r < o.mask_prob) return mask_id;
  if (r < o.mask_prob + o.random_prob) return int32_t(rng.below(uint64_t(n_chars)));
  return original;
}

}  // namespace

void mask_rows(std::span<int32_t> inputs, std::span<int32_t> targets, int64_t T, int32_t mask_id,
               int64_t n_chars, Rng& rng, const MaskingOptions& options) {
  check_options(options);
  QKV_CHECK(T > 0 && inputs.size() % size_t(T) == 0 && targets.size() == inputs.size(),
            "mask_rows: inputs ({}) and targets ({}) must both hold rows of T = {}", inputs.size(),
            targets.size(), T);
  QKV_CHECK(n_chars > 0, "mask_rows: the vocabulary has no characters to draw from");
  std::fill(targets.begin(), targets.end(), -1);
  for (size_t row = 0; row < inputs.size(); row += size_t(T)) {
    int32_t* in = inputs.data() + row;
    int32_t* tgt = targets.data() + row;
    bool any = false;
    for (int64_t t = 0; t < T; ++t) {
      if (rng.uniform() < options.select_prob) tgt[t] = in[t], any = true;
    }
    // A row with nothing to predict would add no signal and, alone in a batch, make the loss
    // undefined (every target ignored).
    if (!any) {
      const auto t = int64_t(rng.below(uint64_t(T)));
      tgt[t] = in[t];
    }
    for (int64_t t = 0; t < T; ++t) {
      if (tgt[t] >= 0) in[t] = replacement(in[t], mask_id, n_chars, rng, options);
    }
  }
}

Batch get_masked_batch(const TextDataset& data, Split split, int64_t B, int64_t T, Rng& rng,
                       const MaskingOptions& options) {
  QKV_CHECK(B > 0 && T > 0,
            "get_masked_batch: batch_size = {} and block_size = {} must be "
            "positive",
            B, T);
  QKV_CHECK(data.vocab().has_special(kMask),
            "masked-character data needs '{}' in the vocabulary; build the dataset with "
            "specials {{\"{}\"}}",
            kMask, kMask);
  const int64_t n = data.size(split);
  check_split_length(split, n, T, "block_size");
  std::vector<int64_t> starts(static_cast<size_t>(B));
  for (int64_t& start : starts) start = int64_t(rng.below(uint64_t(n - T + 1)));
  Batch batch{std::vector<int32_t>(size_t(B * T)), std::vector<int32_t>(size_t(B * T)), B, T};
  for (int64_t b = 0; b < B; ++b)
    data.read(split, starts[size_t(b)], T, batch.inputs.data() + b * T);
  mask_rows(batch.inputs, batch.targets, T, data.vocab().special_id(kMask),
            data.vocab().num_chars(), rng, options);
  return batch;
}

std::vector<int32_t> encode_masked(const Vocab& vocab, std::string_view text, char32_t mask,
                                   std::string_view what) {
  const int32_t mask_id = vocab.special_id(kMask);
  const std::u32string chars = decode_utf8(text, what);
  std::vector<int32_t> ids(chars.size());
  for (size_t i = 0; i < chars.size(); ++i) {
    ids[i] = chars[i] == mask ? mask_id : vocab.id_of(chars[i]);
    if (ids[i] < 0) vocab.throw_unknown(chars[i], int64_t(i), what);
  }
  return ids;
}

}  // namespace qkv::data
