// Beam search against greedy decoding on a trained model whose targets have 1 to 15 characters
// (tests/support/corpus.h: distinct_letters_pairs), where stopping a beam too soon shows.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "qkv/data/pair_dataset.h"
#include "qkv/generate.h"
#include "qkv/io/config.h"
#include "qkv/nn/models.h"
#include "qkv/optim/optimizer.h"
#include "qkv/optim/schedule.h"
#include "qkv/runtime.h"
#include "qkv/train/step.h"
#include "qkv/train/task.h"
#include "qkv/train/trainer.h"
#include "support/corpus.h"
#include "support/temp_dir.h"

using namespace qkv;

namespace {

// This process only, as when started without a launcher.
const parallel::Distributed alone{};

// The tiny config as an encoder-decoder, trained in fp32 for `iters` steps (a few seconds).
std::unique_ptr<train::Task> train_task(const std::string& tsv_path, int64_t iters) {
  const io::Config c =
      io::load_config(QKV_SOURCE_DIR "/configs/tiny.toml",
                      {"data.path=" + tsv_path, "model.kind=encoder_decoder", "model.block_size=20",
                       "train.batch_size=32", "train.precision=fp32", "data.val_fraction=0.1",
                       "train.max_iters=" + std::to_string(iters),
                       "schedule.lr_decay_iters=" + std::to_string(iters)});
  set_num_threads(int(c.train.threads));
  auto task = train::make_task(c);
  const auto params = task->model().named_parameters();
  optim::Optimizer optimizer(params, train::optimizer_config(c, Precision::fp32));
  const optim::ScheduleConfig schedule = train::schedule_config(c);
  optim::ExactGradSum grads(params);
  for (int64_t i = 0; i < iters; ++i)
    train::optimisation_step(*task, optimizer, grads, alone,
                             uint64_t(c.train.seed), i, 1, float(c.optim.grad_clip),
                             optim::lr_at(i, schedule));
  return task;
}

}  // namespace

TEST_CASE(
    "beam search: on targets of 1 to 15 characters, beam 4 matches at least as many as greedy") {
  testing::TempDir dir("beam_exact_match");
  const std::string tsv = dir.write("letters.tsv", testing::distinct_letters_pairs(4000));
  auto task = train_task(tsv, 600);
  auto& model = dynamic_cast<nn::EncoderDecoderModel&>(task->model());
  const data::PairDataset pairs =
      data::PairDataset::load(tsv, {.val_fraction = 0.1, .block_size = 20, .vocab = task->vocab()});

  for (double alpha : {0.0, generate::BeamOptions{}.length_penalty}) {
    CAPTURE(alpha);
    int64_t greedy_right = 0, beam_right = 0, total = 0;
    std::vector<int> lengths(16, 0);
    for (auto it = pairs.sequential(data::Split::val, 1); auto b = it.next();) {
      const std::vector<int32_t> target(b->tgt_out.begin(), b->tgt_out.end() - 1);
      const generate::Hypothesis greedy =
          generate::translate(model, pairs.vocab(), b->src, {.search = {.length_penalty = alpha}})
              .front();
      const generate::Hypothesis beam =
          generate::translate(model, pairs.vocab(), b->src,
                              {.search = {.beam = 4, .length_penalty = alpha}})
              .front();
      CHECK(beam.score >= greedy.score);
      greedy_right += greedy.tokens == target;
      beam_right += beam.tokens == target;
      ++total;
      ++lengths[std::min<size_t>(target.size(), 15)];
    }
    CHECK(total == 400);
    CHECK(std::count(lengths.begin() + 1, lengths.end(), 0) == 0);  // every length 1..15 occurs
    INFO("greedy ", greedy_right, ", beam 4 ", beam_right, " of ", total);
    CHECK(greedy_right >= total * 9 / 10);  // the model has learned the task
    // Measured after 600 steps: 400 and 400 of 400 at both alphas. After 300 steps the old rule
    // (stop once `beam` hypotheses had finished, greedy's path not kept) got 400 and 399 and
    // scored below greedy, but so did the new one in an -O1 (ASan) build, whose model differs:
    // beam search guarantees scores, not matches, so the model trains until it is sure. The
    // exact guarantees are checked against exhaustive search in test_beam_search.cpp.
    CHECK(beam_right >= greedy_right);
  }
}
