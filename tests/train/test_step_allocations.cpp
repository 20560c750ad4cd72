// The training step asks the system for memory only in its first step: from then on every
// tensor (activations, saved buffers, grads, optimizer scratch) is served by the caching
// allocator. And it reads its weights through const handles until AdamW writes them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "qkv/allocator.h"
#include "qkv/io/config.h"
#include "qkv/optim/optimizer.h"
#include "qkv/runtime.h"
#include "qkv/train/step.h"
#include "qkv/train/task.h"
#include "qkv/train/trainer.h"
#include "support/corpus.h"
#include "support/temp_dir.h"

using namespace qkv;
using qkv::testing::TempDir;

namespace {

// This process only, as when started without a launcher.
const parallel::Distributed alone{};

// Tensor-storage blocks obtained from the system by each of `steps` training steps (the step
// of `qkv train`, train::optimisation_step).
std::vector<int64_t> allocations_per_step(const std::vector<std::string>& overrides, int steps) {
  TempDir dir("step_allocations");
  std::vector<std::string> all{"data.path=" +
                               dir.write("corpus.txt", qkv::testing::generated_corpus(800))};
  all.insert(all.end(), overrides.begin(), overrides.end());
  const io::Config c = io::load_config(QKV_SOURCE_DIR "/configs/tiny.toml", all);
  set_num_threads(static_cast<int>(c.train.threads));
  auto task = train::make_task(c);
  const auto params = task->model().named_parameters();
  optim::Optimizer optimizer(params, train::optimizer_config(c, Precision::fp32));
  optim::ExactGradSum grads(params);
  empty_allocator_cache();  // earlier tests' blocks must not serve the first step
  std::vector<int64_t> allocs;
  for (int s = 0; s < steps; ++s) {
    const int64_t before = allocator_stats().system_allocs;
    train::optimisation_step(*task, optimizer, grads, alone, 1, s,
                             c.train.grad_accum, 1.0f, 1e-3f);
    allocs.push_back(allocator_stats().system_allocs - before);
  }
  set_num_threads(0);
  return allocs;
}

}  // namespace

TEST_CASE("train step: no system allocation for tensor storage after the first step") {
  SUBCASE("the tiny config") {
    const std::vector<int64_t> a = allocations_per_step({}, 5);
    CHECK(a[0] > 0);  // the first step fills the cache, so the counter is live
    for (size_t s = 1; s < a.size(); ++s) CHECK_MESSAGE(a[s] == 0, "step " << s + 1);
  }
  SUBCASE("with dropout and gradient accumulation") {
    const std::vector<int64_t> a =
        allocations_per_step({"model.dropout=0.1", "train.grad_accum=2"}, 5);
    for (size_t s = 1; s < a.size(); ++s) CHECK_MESSAGE(a[s] == 0, "step " << s + 1);
  }
  SUBCASE("with Muon (its Newton-Schulz scratch too)") {
    const std::vector<int64_t> a = allocations_per_step({"optim.kind=muon"}, 5);
    for (size_t s = 1; s < a.size(); ++s) CHECK_MESSAGE(a[s] == 0, "step " << s + 1);
  }
}

TEST_CASE("train step: forward and backward write no weight (a bf16 copy is made once a step)") {
  TempDir dir("step_versions");
  const io::Config c = io::load_config(
      QKV_SOURCE_DIR "/configs/tiny.toml",
      {"data.path=" + dir.write("corpus.txt", qkv::testing::generated_corpus(800)),
       "model.dropout=0.1"});
  auto task = train::make_task(c, std::nullopt,
                               bf16_support(nullptr).usable ? Precision::bf16 : Precision::fp32);
  const NamedTensors params = task->model().named_parameters();
  std::vector<uint64_t> before;
  for (const auto& [name, p] : params) before.push_back(p.impl()->storage->version);
  Rng data(1, 2), dropout(1, 1);
  const train::Task::Prediction p = task->predict(data::Split::train, data, &dropout);
  softmax_cross_entropy(p.logits, p.targets).backward();
  for (size_t i = 0; i < params.size(); ++i)
    CHECK_MESSAGE(params[i].second.impl()->storage->version == before[i], params[i].first);
}
