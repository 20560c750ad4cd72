// ModelConfig validation: one message per bad key, in the config file's vocabulary.
#include "qkv/nn/model_config.h"

#include "qkv/error.h"

namespace qkv::nn {

void ModelConfig::check_keys(const std::function<std::string(const char* key)>& at) const {
  auto check = [&](bool ok, const char* key, const std::string& what) {
    if (!ok) throw Error(at ? fmt::format("{}: {}", at(key), what) : what);
  };
  check(n_layer > 0, "model.n_layer", fmt::format("model.n_layer = {} must be positive", n_layer));
  check(n_head > 0, "model.n_head", fmt::format("model.n_head = {} must be positive", n_head));
  check(n_embd > 0, "model.n_embd", fmt::format("model.n_embd = {} must be positive", n_embd));
  check(n_embd % n_head == 0, "model.n_head",
        fmt::format("model.n_embd = {} is not divisible by model.n_head = {}", n_embd, n_head));
  check(block_size > 0, "model.block_size",
        fmt::format("model.block_size = {} must be positive", block_size));
  check(dropout >= 0.0 && dropout < 1.0, "model.dropout",
        fmt::format("model.dropout = {} is not in [0, 1)", dropout));
  check(ffn_hidden >= 0, "model.ffn_hidden",
        fmt::format("model.ffn_hidden = {} must be positive (or 0 for 4·n_embd)", ffn_hidden));
  check(pos_encoding != PosEncoding::sinusoidal || n_embd % 2 == 0, "model.n_embd",
        fmt::format("model.n_embd = {} must be even for sinusoidal positions (sin/cos pairs)",
                    n_embd));
  check(pos_encoding != PosEncoding::rope || head_size() % 2 == 0, "model.pos_encoding",
        fmt::format("model.pos_encoding = \"rope\" turns channel pairs of each head, so the head "
                    "size must be even; model.n_embd / model.n_head = {}",
                    head_size()));
  check(rope_base > 1.0, "model.rope_base",
        fmt::format("model.rope_base = {} must be greater than 1", rope_base));
}

void ModelConfig::validate() const {
  QKV_CHECK(vocab_size > 0, "model.vocab_size = {} must be positive", vocab_size);
  check_keys();
}

}  // namespace qkv::nn
