// ModelConfig validation: one message per bad key, in the config file's vocabulary.
#include "qkv/nn/model_config.h"

#include "qkv/error.h"

namespace qkv::nn {

void ModelConfig::validate() const {
  QKV_CHECK(vocab_size > 0, "model.vocab_size = {} must be positive", vocab_size);
  QKV_CHECK(n_layer > 0, "model.n_layer = {} must be positive", n_layer);
  QKV_CHECK(n_head > 0, "model.n_head = {} must be positive", n_head);
  QKV_CHECK(n_embd > 0, "model.n_embd = {} must be positive", n_embd);
  QKV_CHECK(n_embd % n_head == 0, "model.n_embd = {} is not divisible by model.n_head = {}", n_embd,
            n_head);
  QKV_CHECK(block_size > 0, "model.block_size = {} must be positive", block_size);
  QKV_CHECK(dropout >= 0.0 && dropout < 1.0, "model.dropout = {} is not in [0, 1)", dropout);
  QKV_CHECK(ffn_hidden >= 0, "model.ffn_hidden = {} must be positive (or 0 for 4·n_embd)",
            ffn_hidden);
  QKV_CHECK(pos_encoding != PosEncoding::sinusoidal || n_embd % 2 == 0,
            "model.n_embd = {} must be even for sinusoidal positions (sin/cos pairs)", n_embd);
}

}  // namespace qkv::nn
