// A run being written while it is served: checkpoints saved (and old ones pruned) and
// metrics.jsonl growing during requests never break a response.
#include <doctest/doctest.h>

#include "serve_fixture.h"

using namespace qkv;
using namespace qkv::testing;

TEST_CASE("serve: checkpoints saved and pruned during requests never break an answer") {
  TestRuns runs("serve_being_written");
  const io::Config dc = tiny_config(nn::ModelKind::decoder);
  const auto model = make_model<nn::DecoderModel>(dc, runs.text, 3);
  io::CheckpointData d;
  d.model = model->state_dict();
  d.config_toml = io::to_toml(dc);
  d.vocab = runs.text.to_json();
  d.data_fingerprint = std::string(64, '0');
  TestServer server(runs.root);

  // A trainer's writes, as fast as they come (far faster than a real one's): a checkpoint each
  // step, only the newest kept, and a metrics line each.
  std::atomic<bool> done{false};
  std::thread trainer([&] {
    for (int64_t step = 1; step <= 40; ++step) {
      d.trainer_state = {{"iter", step},          {"micro_batches", 1},
                         {"processes", 1},        {"best_val_loss", nullptr},
                         {"last_eval", nullptr},  {"model_kind", "decoder"}};
      io::save_checkpoint((runs.root / "dec").string(), step, d);
      io::prune_checkpoints((runs.root / "dec").string(), 1);
      std::ofstream(runs.root / "dec" / "metrics.jsonl", std::ios::app)
          << fmt::format("{{\"iter\":{},\"loss\":3.0}}\n", step);
    }
    done = true;
  });
  int answers = 0;
  while (!done) {
    for (const char* path : {"/api/sample?run=dec&prompt=a&max_tokens=2", "/api/runs",
                             "/api/metrics?run=dec", "/api/attention?run=dec&text=ab"}) {
      const Reply r = get(server, path);
      CHECK_MESSAGE(r.status == 200, (std::string(path) + ": " + r.text));
      ++answers;
    }
  }
  trainer.join();
  CHECK(answers > 0);
}
