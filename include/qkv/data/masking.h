// Masked-character data for the encoder (BERT's masked LM, over characters): random windows
// of a text split in which some positions are hidden and must be predicted.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "qkv/data/text_dataset.h"
#include "qkv/rng.h"

namespace qkv::data {

struct MaskingOptions {
  double select_prob = 0.15;  // chance that a position is chosen for prediction
  // What a chosen position's input becomes: <mask> with mask_prob, a random character with
  // random_prob, and otherwise the original character (BERT's 80/10/10).
  double mask_prob = 0.8;
  double random_prob = 0.1;
};

// Masks rows of length T in place: inputs [B, T] in, inputs and targets [B, T] out. For each
// row, each position draws rng.uniform() < select_prob; a row with none chosen gets one at
// rng.below(T). Each chosen position then draws rng.uniform() for its replacement and, when
// random, rng.below(n_chars) for a character id (never a special). Throws qkv::Error for
// probabilities outside [0, 1] or mask_prob + random_prob > 1.
void mask_rows(std::span<int32_t> inputs, std::span<int32_t> targets, int64_t T, int32_t mask_id,
               int64_t n_chars, Rng& rng, const MaskingOptions& options = {});

// B random windows of T characters of a split (starts drawn first, each rng.below(n - T + 1)),
// then mask_rows: a Batch whose inputs have masking applied and whose targets hold the original
// id at chosen positions and -1 (the loss's ignore_index) everywhere else. The dataset's vocab
// must hold <mask> (TextDatasetOptions::specials).
Batch get_masked_batch(const TextDataset& data, Split split, int64_t B, int64_t T, Rng& rng,
                       const MaskingOptions& options = {});

// An encoder's prompt as ids: vocab.encode(text, what) with each `mask` character <mask>.
std::vector<int32_t> encode_masked(const Vocab& vocab, std::string_view text, char32_t mask,
                                   std::string_view what);

}  // namespace qkv::data
