// Exact-match accuracy of an encoder-decoder: the share of examples whose decoded output
// (greedy or beam search) equals the target exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "qkv/data/pair_dataset.h"
#include "qkv/data/split.h"
#include "qkv/generate.h"
#include "qkv/nn/models.h"

namespace qkv::inspect {

struct ExactMatch {
  int64_t correct = 0, total = 0;
  double accuracy() const { return total ? double(correct) / double(total) : 0.0; }
};

// Decodes every example of the given splits, in file order, with generate::translate and
// compares its best output with the target. Throws qkv::Error when the splits hold no example.
ExactMatch exact_match(nn::EncoderDecoderModel& model, const data::PairDataset& data,
                       const std::vector<data::Split>& splits,
                       const generate::TranslateOptions& options = {});

}  // namespace qkv::inspect
