// A corpus's ids in a vocabulary's numbering, shared by the text and pair datasets.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "qkv/data/corpus.h"
#include "qkv/data/vocab.h"

namespace qkv::data {

// The vocabulary's id of each corpus id, empty when they are the same. When the vocabulary
// lacks characters of the corpus, calls unknown(position, character) for the first of them in
// the text, which must throw.
std::vector<int32_t> vocab_ids(const Corpus& corpus, const Vocab& vocab,
                               const std::function<void(int64_t, char32_t)>& unknown);

}  // namespace qkv::data
