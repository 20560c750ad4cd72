// The check every generation function makes of the vocabulary it is given.
#pragma once

#include "qkv/data/vocab.h"
#include "qkv/error.h"

namespace qkv::generate {

// A vocabulary of another size would index outside the embedding or misread the logits.
inline void check_vocab(const char* who, const data::Vocab& vocab, int64_t model_vocab_size) {
  QKV_CHECK(vocab.size() == model_vocab_size,
            "{}: the vocabulary has {} symbols but the model was built for {}", who, vocab.size(),
            model_vocab_size);
}

}  // namespace qkv::generate
