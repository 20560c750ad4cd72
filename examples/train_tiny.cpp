// Build a small decoder in code, train it a few hundred steps on a string, print the loss falling.
#include <qkv/data/vocab.h>
#include <qkv/nn/models.h>
#include <qkv/ops.h>
#include <qkv/optim/adamw.h>
#include <qkv/rng.h>

#include <cstdio>
#include <string>
#include <vector>

int main() {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  const qkv::data::Vocab vocab = qkv::data::Vocab::from_text(text);
  const std::vector<int32_t> ids = vocab.encode(text);

  qkv::nn::ModelConfig config;  // the rest as the defaults: see docs/config.md, [model]
  config.vocab_size = vocab.size();
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 64;
  config.block_size = 32;
  qkv::nn::DecoderModel model(config);
  qkv::optim::AdamW adamw(model.named_parameters(), {});

  // Each step: B windows of T characters at random places; the targets are the next characters.
  const int64_t B = 8, T = config.block_size;
  qkv::Rng rng(1);
  std::vector<int32_t> x(B * T), y(B * T);
  for (int step = 0; step <= 300; ++step) {
    for (int64_t b = 0; b < B; ++b) {
      const auto start = int64_t(rng.below(ids.size() - T - 1));
      for (int64_t t = 0; t < T; ++t) {
        x[b * T + t] = ids[start + t];
        y[b * T + t] = ids[start + t + 1];
      }
    }
    const qkv::Tensor loss = qkv::softmax_cross_entropy(model.logits(x, B, T), y);
    adamw.zero_grad();
    loss.backward();
    adamw.step(3e-3f);
    if (step % 50 == 0) std::printf("step %3d  loss %.3f\n", step, loss.item());
  }
  return 0;
}
