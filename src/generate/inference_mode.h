// What every generation function runs under: no graph recording, and eval mode (no dropout)
// for its duration, the model's previous mode restored afterwards.
#pragma once

#include "qkv/autograd.h"
#include "qkv/data/vocab.h"
#include "qkv/error.h"
#include "qkv/nn/module.h"

namespace qkv::generate {

class InferenceMode {
 public:
  explicit InferenceMode(nn::Module& model) : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~InferenceMode() { model_.train(was_training_); }
  InferenceMode(const InferenceMode&) = delete;
  InferenceMode& operator=(const InferenceMode&) = delete;

 private:
  nn::Module& model_;
  bool was_training_;
  NoGradGuard no_grad_;
};

// A vocabulary of another size would index outside the embedding or misread the logits.
inline void check_vocab(const char* who, const data::Vocab& vocab, int64_t model_vocab_size) {
  QKV_CHECK(vocab.size() == model_vocab_size,
            "{}: the vocabulary has {} symbols but the model was built for {}", who, vocab.size(),
            model_vocab_size);
}

}  // namespace qkv::generate
