// qkv serve under load: CLIENTS clients each ask REQUESTS samples of TOKENS tokens at once from
// a server that runs --max-generations of them at a time, over loopback. Reports the latency of
// a whole sample (request to its done event) and of its first token, p50 and p99, how many were
// refused (429), and the server's memory before and after (a leak grows it). Weights are random
// (speed does not depend on them).
//   bench_serve [CONFIG (default configs/shakespeare_char.toml)] [--clients N] [--requests N]
//               [--tokens N] [--max-generations N]
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "qkv/error.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/config.h"
#include "qkv/load.h"
#include "qkv/nn/models.h"
#include "qkv/runtime.h"
#include "server.h"

using namespace qkv;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Resident memory of this process, in MB.
double rss_mb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmRSS:")) return std::stod(line.substr(6)) / 1024;
  return 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

// RUN/checkpoint-0 of a decoder of the config's shape with random weights, as a trainer saves it.
void save_random_run(const fs::path& run, io::Config c) {
  std::vector<char32_t> chars(65);  // 65 symbols, as tiny Shakespeare
  std::iota(chars.begin(), chars.end(), U'A');
  const data::Vocab vocab(chars);
  c.model.kind = nn::ModelKind::decoder;
  const nn::DecoderModel model(load::model_config(c, vocab.size()));
  io::CheckpointData d;
  d.model = model.state_dict();
  d.trainer_state = {{"iter", 0},
                     {"micro_batches", 1},
                     {"processes", 1},
                     {"best_val_loss", nullptr},
                     {"last_eval", nullptr},
                     {"model_kind", "decoder"}};
  d.config_toml = io::to_toml(c);
  d.vocab = vocab.to_json();
  d.data_fingerprint = std::string(64, '0');
  io::save_checkpoint(run.string(), 0, d);
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernel(argv);
  CLI::App app{"qkv serve under concurrent sample requests (random weights, loopback)"};
  std::string config_path = "configs/shakespeare_char.toml";
  int clients = 8, requests = 10, max_generations = 2;
  int64_t tokens = 100;
  app.add_option("config", config_path, "TOML config: the model's shape")
      ->check(CLI::ExistingFile)
      ->capture_default_str();
  app.add_option("--clients", clients, "clients asking at once")->capture_default_str();
  app.add_option("--requests", requests, "samples each client asks, one after another")
      ->capture_default_str();
  app.add_option("--tokens", tokens, "tokens per sample")->capture_default_str();
  app.add_option("--max-generations", max_generations, "the server's --max-generations")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const fs::path dir = fs::temp_directory_path() / ("bench_serve-" + std::to_string(::getpid()));
    save_random_run(dir / "run", io::load_config(config_path, {"data.path=unused"}));
    serve::Server server({.runs_dir = dir.string(),
                          .port = 0,
                          .limits = {.max_tokens = tokens, .max_generations = max_generations},
                          .precision = choose_precision(PrecisionSetting::automatic, "",
                                                        bf16_support(std::getenv("QKV_CPU_BF16")))
                                           .precision});
    const int port = server.bind();
    std::thread http([&server] { server.run(); });
    std::printf("%s\n%s: %d clients x %d samples of %lld tokens, --max-generations %d\n",
                runtime_summary(read_environment()).c_str(), config_path.c_str(), clients,
                requests, (long long)tokens, max_generations);

    const double rss_before = rss_mb();
    std::mutex mutex;
    std::vector<double> whole_ms, first_ms;
    std::atomic<int> refused{0}, failed{0};
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        httplib::Client client("127.0.0.1", port);
        client.set_read_timeout(600);
        for (int i = 0; i < requests; ++i) {
          const auto start = Clock::now();
          double first = -1;
          const std::string path =
              "/api/sample?run=run&prompt=A&max_tokens=" + std::to_string(tokens) +
              "&seed=" + std::to_string(c * requests + i);
          std::string body;
          const httplib::Result r = client.Get(path, [&](const char* data, size_t n) {
            if (first < 0)
              first = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
            body.append(data, n);
            return true;
          });
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
          if (r && r->status == 429) {
            ++refused;
          } else if (r && r->status == 200 && body.find("event: done") != std::string::npos) {
            std::lock_guard lock(mutex);
            whole_ms.push_back(ms);
            first_ms.push_back(first);
          } else if (failed++ == 0) {
            std::fprintf(stderr, "a sample failed: %s\n",
                         r ? (std::to_string(r->status) + " " + r->body).c_str()
                           : httplib::to_string(r.error()).c_str());
          }
        }
      });
    for (std::thread& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    server.stop();
    http.join();
    fs::remove_all(dir);

    std::printf("samples   %zu whole, %d refused (429), %d failed, in %.2f s: %.0f tokens/s\n",
                whole_ms.size(), refused.load(), failed.load(), seconds,
                double(whole_ms.size()) * double(tokens) / seconds);
    std::printf(
        "latency   whole sample p50 %.1f ms, p99 %.1f ms; first token p50 %.1f ms, "
        "p99 %.1f ms\n",
        percentile(whole_ms, 0.5), percentile(whole_ms, 0.99), percentile(first_ms, 0.5),
        percentile(first_ms, 0.99));
    std::printf("memory    %.1f MB before, %.1f MB after\n", rss_before, rss_mb());
    return failed == 0 ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
