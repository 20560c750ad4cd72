// Sampling speed: tokens/s for 500 new tokens (batch 1) from a decoder of a config's shape,
// with and without the KV cache, in fp32 and in bf16 (on a CPU with AVX512_BF16), under one
// window policy (how the window slides past block_size tokens). Weights are random (speed does
// not depend on them).
//   bench_sample [CONFIG (default configs/shakespeare_char_big.toml)] [--threads N] [--tokens N]
//                [--window exact|chunked]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/io/config.h"
#include "qkv/load.h"
#include "qkv/runtime.h"

using namespace qkv;

int main(int argc, char** argv) {
  select_blas_kernel(argv);
  CLI::App app{"Sampling speed with and without the KV cache (random weights, batch 1)"};
  std::string config_path = "configs/shakespeare_char_big.toml";
  int threads = 1;
  int64_t tokens = 500;
  std::string window{enum_name(generate::SamplingOptions{}.window)};
  app.add_option("config", config_path, "TOML config: the model's shape")
      ->check(CLI::ExistingFile)
      ->capture_default_str();
  app.add_option("--threads", threads, "threads (0 = all cores)")->capture_default_str();
  app.add_option("--tokens", tokens, "new tokens per run")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--window", window, "window policy past block_size: exact or chunked")
      ->check(CLI::IsMember({"exact", "chunked"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    set_num_threads(threads);
    std::printf("%s\n", runtime_summary(read_environment()).c_str());

    // 65 symbols, as tiny Shakespeare.
    std::vector<char32_t> chars(65);
    std::iota(chars.begin(), chars.end(), U'A');
    const data::Vocab vocab(chars);
    io::Config c = io::load_config(config_path, {"data.path=unused"});
    nn::DecoderModel model(load::model_config(c, vocab.size()));
    std::printf("%s: %lld layers, %lld embd, block %lld; %lld new tokens, batch 1, window %s\n",
                config_path.c_str(), (long long)c.model.n_layer, (long long)c.model.n_embd,
                (long long)c.model.block_size, (long long)tokens, window.c_str());

    const std::vector<int32_t> prompt{0};
    std::vector<Precision> precisions{Precision::fp32};
    if (bf16_support(std::getenv("QKV_CPU_BF16")).usable) precisions.push_back(Precision::bf16);
    for (Precision precision : precisions) {
      model.set_precision(precision);
      double rate[2];
      for (bool cache : {true, false}) {
        generate::SamplingOptions o;
        o.max_new_tokens = tokens;
        o.use_cache = cache;
        o.window = *parse_enum<generate::WindowPolicy>(window);
        Rng rng(1);
        const auto t0 = std::chrono::steady_clock::now();
        const generate::Generation g = generate::sample(model, vocab, prompt, o, rng);
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rate[cache] = double(g.tokens.size()) / s;
        std::printf("%s %-13s %8.1f tokens/s (%.2f s)\n", enum_name(precision).data(),
                    cache ? "KV cache" : "no cache", rate[cache], s);
      }
      std::printf("%s cache speed-up: %.1fx\n", enum_name(precision).data(), rate[1] / rate[0]);
    }
  } catch (const qkv::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
