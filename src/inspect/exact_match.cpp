// Exact match over a pair dataset, one example at a time (no padding to get in the way).
#include "qkv/inspect/exact_match.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "qkv/error.h"

namespace qkv::inspect {

ExactMatch exact_match(nn::EncoderDecoderModel& model, const data::PairDataset& data,
                       const std::vector<data::Split>& splits,
                       const generate::TranslateOptions& options) {
  using Clock = std::chrono::steady_clock;
  // A decode of many pairs, or with a wide beam, may take minutes: say how far it is.
  constexpr auto kProgressEvery = std::chrono::seconds(5);
  int64_t total = 0;
  for (data::Split split : splits) total += data.size(split);
  auto last_said = Clock::now();
  ExactMatch m;
  for (data::Split split : splits)
    for (auto it = data.sequential(split, 1); auto b = it.next();) {
      // B = 1: src is the whole source; tgt_out is the target followed by <eos>.
      const std::vector<int32_t> target(b->tgt_out.begin(), b->tgt_out.end() - 1);
      const std::vector<generate::Hypothesis> best =
          generate::translate(model, data.vocab(), b->src, options);
      m.correct += best.front().tokens == target;
      ++m.total;
      if (Clock::now() - last_said >= kProgressEvery) {
        spdlog::info("exact match: {} of {} pairs decoded, {} matched so far", m.total, total,
                     m.correct);
        last_said = Clock::now();
      }
    }
  QKV_CHECK(m.total > 0, "exact match: no examples to decode (the split is empty)");
  return m;
}

}  // namespace qkv::inspect
