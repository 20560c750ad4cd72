// Load a checkpoint with qkv's one loader and stream a sample from it, token by token.
//   generate RUN_OR_CHECKPOINT [PROMPT]     (a run directory means its latest checkpoint)
#include <qkv/error.h>
#include <qkv/generate.h>
#include <qkv/load.h>
#include <qkv/nn/models.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s RUN_OR_CHECKPOINT [PROMPT]\n", argv[0]);
    return 1;
  }
  try {
    // Verified against its manifest, config and vocabulary read, weights in: ready to run.
    qkv::load::LoadedModel loaded = qkv::load::load_model(argv[1]);
    auto* decoder = dynamic_cast<qkv::nn::DecoderModel*>(loaded.model.get());
    if (decoder == nullptr) throw qkv::Error(std::string(argv[1]) + " is not a decoder");

    const std::string prompt = argc == 3 ? argv[2] : "\n";
    qkv::generate::SamplingOptions options;
    options.max_new_tokens = 200;
    options.temperature = 0.8f;
    qkv::Rng rng(1);
    std::fputs(prompt.c_str(), stdout);
    qkv::generate::sample(*decoder, loaded.vocab, loaded.vocab.encode(prompt, "the prompt"), options, rng,
                [](const qkv::generate::GeneratedToken& token) {
                  std::fwrite(token.text.data(), 1, token.text.size(), stdout);
                  std::fflush(stdout);
                });
    std::fputs("\n", stdout);
  } catch (const qkv::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
