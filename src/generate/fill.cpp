// Encoder fill: masked characters replaced by the encoder's most likely characters.
#include <algorithm>

#include "generate/check_vocab.h"
#include "qkv/data/masking.h"
#include "qkv/data/utf8.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/ops.h"

namespace qkv::generate {

Fill fill_masks(nn::EncoderModel& model, const data::Vocab& vocab, std::string_view text,
                char32_t mask_char, int64_t top_k) {
  check_vocab("fill", vocab, model.config().vocab_size);
  QKV_CHECK(top_k >= 1, "fill: top-k = {} must be at least 1", top_k);
  QKV_CHECK(vocab.num_chars() > 0, "fill: the vocabulary has no characters");
  const std::u32string chars = data::decode_utf8(text, "fill text");
  const auto T = int64_t(chars.size());
  QKV_CHECK(T <= model.config().block_size,
            "fill: the text has {} characters, more than the model's block_size = {}", T,
            model.config().block_size);

  std::vector<int64_t> masked;
  for (int64_t i = 0; i < T; ++i)
    if (chars[size_t(i)] == mask_char) masked.push_back(i);
  QKV_CHECK(!masked.empty(), "fill: the text has no mask character {} to fill",
            data::describe_char(mask_char));
  const std::vector<int32_t> ids = data::encode_masked(vocab, text, mask_char, "fill text");

  NoGradGuard no_grad;
  const Tensor probs = softmax(model.logits(ids, 1, T));  // [1, T, V]
  const int64_t V = probs.size(2), n_chars = vocab.num_chars();
  const int64_t k = std::min(top_k, n_chars);
  Fill out;
  std::u32string filled = chars;
  for (int64_t i : masked) {
    const float* p = probs.data() + i * V;
    // Only characters can fill a position.
    const std::vector<int32_t> order = top_ids(std::span(p, size_t(n_chars)), k);
    FilledPosition pos{i, {}};
    for (const int32_t id : order) pos.candidates.emplace_back(id, p[id]);
    filled[size_t(i)] = vocab.chars()[size_t(order[0])];
    out.positions.push_back(std::move(pos));
  }
  for (char32_t c : filled) data::append_utf8(out.text, c);
  return out;
}

}  // namespace qkv::generate
