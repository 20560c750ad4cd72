#include "generate/models.h"

namespace qkv::testing {

io::Config tiny_config(nn::ModelKind kind) {
  io::Config c;
  c.data.path = {"corpus.txt"};  // never read: sampling needs only the checkpoint
  c.model.kind = kind;
  c.model.n_layer = 2;
  c.model.n_head = 2;
  c.model.n_embd = 32;
  c.model.block_size = 16;
  c.model.bias = true;
  return c;
}

void randomize(nn::Module& model, uint64_t seed, float stddev) {
  Rng rng(seed);
  for (auto& [name, t] : model.named_parameters()) {
    float* data = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) data[i] = stddev * rng.normal();
  }
}

data::Vocab text_vocab() { return data::Vocab::from_text(generated_corpus(50)); }
data::Vocab mask_vocab() {
  return data::Vocab::from_text(generated_corpus(50), {data::kMask});
}
data::Vocab pair_vocab() {
  return data::Vocab::from_text("abcdefgh", {data::kPad, data::kBos, data::kEos});
}

std::string save_run(const std::filesystem::path& run, const io::Config& config,
                     const data::Vocab& vocab, const nn::Module& model) {
  io::CheckpointData d;
  d.model = model.state_dict();
  d.trainer_state = {{"iter", 0},
                     {"micro_batches", 1},
                     {"processes", 1},
                     {"best_val_loss", nullptr},
                     {"last_eval", nullptr},
                     {"model_kind", enum_name(config.model.kind)}};
  d.config_toml = io::to_toml(config);
  d.vocab = vocab.to_json();
  d.data_fingerprint = std::string(64, '0');
  io::save_checkpoint(run.string(), 0, d);
  return run.string();
}

}  // namespace qkv::testing
