// Exact match over a pair dataset, one example at a time (no padding to get in the way).
#include "qkv/inspect/exact_match.h"

#include "qkv/error.h"

namespace qkv::inspect {

ExactMatch exact_match(nn::EncoderDecoderModel& model, const data::PairDataset& data,
                       const std::vector<data::Split>& splits,
                       const generate::TranslateOptions& options) {
  ExactMatch m;
  for (data::Split split : splits)
    for (auto it = data.sequential(split, 1); auto b = it.next();) {
      // B = 1: src is the whole source; tgt_out is the target followed by <eos>.
      const std::vector<int32_t> target(b->tgt_out.begin(), b->tgt_out.end() - 1);
      const std::vector<generate::Hypothesis> best =
          generate::translate(model, data.vocab(), b->src, options);
      m.correct += best.front().tokens == target;
      ++m.total;
    }
  QKV_CHECK(m.total > 0, "exact match: no examples to decode (the split is empty)");
  return m;
}

}  // namespace qkv::inspect
