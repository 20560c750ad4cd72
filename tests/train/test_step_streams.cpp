// A step's data and dropout masks come from streams keyed by (seed, iter, micro-batch), not from
// one sequential stream: what a step computes does not depend on the steps before it.
#include <doctest/doctest.h>

#include <vector>

#include "qkv/io/config.h"
#include "qkv/runtime.h"
#include "qkv/train/step.h"
#include "qkv/train/trainer.h"
#include "support/corpus.h"
#include "support/temp_dir.h"

using namespace qkv;
using qkv::testing::TempDir;

namespace {

// This process only, as when started without a launcher.
const parallel::Distributed alone{};

struct Steps {
  std::unique_ptr<train::Task> task;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::ExactGradSum> grads;
};

Steps make_steps(const std::string& data, const std::vector<std::string>& settings) {
  std::vector<std::string> all{"data.path=" + data, "model.dropout=0.1"};
  all.insert(all.end(), settings.begin(), settings.end());
  const io::Config c = io::load_config(QKV_SOURCE_DIR "/configs/tiny.toml", all);
  Steps s{train::make_task(c), nullptr, nullptr};
  const NamedTensors params = s.task->model().named_parameters();
  s.optimizer = std::make_unique<optim::Optimizer>(params, optim::OptimizerConfig{});
  s.grads = std::make_unique<optim::ExactGradSum>(params);
  return s;
}

// At lr 0 AdamW leaves the weights as they are, so two models stay equal whatever steps ran.
double loss_at(Steps& s, int64_t iter, int64_t grad_accum) {
  return train::optimisation_step(*s.task, *s.optimizer, *s.grads, alone, 1337,
                                  iter, grad_accum, 1.0f, 0.0f)
      .loss;
}

}  // namespace

TEST_CASE("train step: its batches and dropout depend on (seed, iter), not on the steps before") {
  TempDir dir("step_streams");
  const std::string data = dir.write("corpus.txt", qkv::testing::generated_corpus(500));
  set_num_threads(1);
  for (const char* kind : {"decoder", "encoder"}) {
    CAPTURE(kind);
    Steps fresh = make_steps(data, {std::string("model.kind=") + kind});
    Steps warmed = make_steps(data, {std::string("model.kind=") + kind});
    for (int64_t iter = 0; iter < 3; ++iter) loss_at(warmed, iter, 2);
    const double at3 = loss_at(fresh, 3, 2);
    CHECK(loss_at(warmed, 3, 2) == at3);
    CHECK(loss_at(fresh, 4, 2) != at3);  // another step, other batches
    CHECK(loss_at(fresh, 3, 1) != at3);  // micro-batch 1 differs from micro-batch 0
  }
  set_num_threads(0);
}

TEST_CASE("train step: micro-batch streams differ in every element of their key") {
  auto first = [](Rng r) {
    std::vector<uint32_t> v(8);
    for (uint32_t& x : v) x = r.next_u32();
    return v;
  };
  const auto base = first(train::micro_batch_data_rng(1337, 5, 2));
  CHECK(first(train::micro_batch_data_rng(1337, 5, 2)) == base);
  CHECK(first(train::micro_batch_data_rng(1337, 5, 3)) != base);
  CHECK(first(train::micro_batch_data_rng(1337, 6, 2)) != base);
  CHECK(first(train::micro_batch_data_rng(1338, 5, 2)) != base);
  CHECK(first(train::micro_batch_data_rng(1337, 2, 5)) != base);
  CHECK(first(train::micro_batch_dropout_rng(1337, 5, 2)) != base);
}
