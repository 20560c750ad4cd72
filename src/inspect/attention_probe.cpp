#include "qkv/inspect/attention_probe.h"

#include <fmt/format.h>

#include "qkv/autograd.h"
#include "qkv/data/masking.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"
#include "qkv/nn/attention.h"
#include "qkv/nn/models.h"

namespace qkv::inspect {
namespace {

// While alive, every layer's attention module "<prefix>blocks.<l>.<name>" records into
// probs[l]; the modules must not keep pointing at probs once it is gone.
class Recording {
 public:
  Recording(nn::Module& model, const std::string& prefix, const std::string& name,
            std::vector<Tensor>& probs) {
    for (auto& [path, module] : model.named_modules())
      for (size_t l = 0; l < probs.size(); ++l)
        if (path == fmt::format("{}blocks.{}.{}", prefix, l, name)) {
          record(module, &probs[l]);
          modules_.push_back(module);
        }
  }
  ~Recording() {
    for (nn::Module* m : modules_) record(m, nullptr);
  }
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;

 private:
  static void record(nn::Module* m, Tensor* out) {
    if (auto* self = dynamic_cast<nn::MultiHeadAttention*>(m)) self->record_probabilities(out);
    if (auto* cross = dynamic_cast<nn::CrossAttention*>(m)) cross->record_probabilities(out);
  }
  std::vector<nn::Module*> modules_;
};

std::vector<std::string> char_labels(std::string_view text) {
  std::vector<std::string> labels;
  for (char32_t c : data::decode_utf8(text)) labels.push_back(plot::display_char(c));
  return labels;
}

void check_length(int64_t n, int64_t limit, std::string_view what, int64_t block_size) {
  QKV_CHECK(n >= 1 && n <= limit, "{} has {} characters; this model takes 1 to {} (block_size {})",
            what, n, limit, block_size);
}

}  // namespace

plot::AttentionChart probe_attention(nn::Module& model, const io::Config& config,
                                     const data::Vocab& vocab, const AttentionRequest& r) {
  const auto& m = config.model;
  const AttentionRequest::Names& name = r.names;
  QKV_CHECK(r.layer >= -1 && r.layer < m.n_layer, "{} {}: the model has {} layers (0 to {})",
            name.layer, r.layer, m.n_layer, m.n_layer - 1);
  QKV_CHECK(r.head >= -1 && r.head < m.n_head, "{} {}: the model has {} heads (0 to {})", name.head,
            r.head, m.n_head, m.n_head - 1);
  std::vector<Tensor> probs(size_t(m.n_layer));
  plot::AttentionChart chart;
  NoGradGuard no_grad;
  if (m.kind != nn::ModelKind::encoder_decoder) {
    const bool decoder = m.kind == nn::ModelKind::decoder;
    // An encoder's prompt marks the positions to fill with data.mask_char.
    std::vector<int32_t> ids =
        decoder ? vocab.encode(r.text, name.text)
                : data::encode_masked(vocab, r.text, data::decode_utf8(config.data.mask_char)[0],
                                      name.text);
    const int64_t T = int64_t(ids.size());
    check_length(T, m.block_size, name.text, m.block_size);
    Recording recording(model, "", "attn", probs);
    if (decoder)
      dynamic_cast<nn::DecoderModel&>(model).logits(ids, 1, T);
    else
      dynamic_cast<nn::EncoderModel&>(model).logits(ids, 1, T);
    chart.row_labels = chart.col_labels = char_labels(r.text);
    chart.title = fmt::format("{} self-attention", decoder ? "causal" : "bidirectional");
    chart.subtitle = "rows: query positions; columns: the keys they attend to (each row sums to 1)";
  } else {
    QKV_CHECK(r.part == "cross" || r.part == "encoder" || r.part == "decoder",
              "{} {}: expected cross, encoder or decoder", name.part, r.part);
    QKV_CHECK(!r.target.empty(),
              "an encoder-decoder model needs {}: the output to feed the decoder (for example "
              "the expected answer)",
              name.target);
    const std::vector<int32_t> src = vocab.encode(r.text, name.source);
    std::vector<int32_t> tgt{vocab.special_id(data::kBos)};
    for (int32_t id : vocab.encode(r.target, name.target)) tgt.push_back(id);
    const int64_t Ts = int64_t(src.size()), Tt = int64_t(tgt.size());
    check_length(Ts, m.block_size, name.source, m.block_size);
    check_length(Tt - 1, m.block_size - 1, name.target, m.block_size);
    Recording recording(model, r.part == "encoder" ? "encoder." : "decoder.",
                        r.part == "cross" ? "cross_attn" : "attn", probs);
    dynamic_cast<nn::EncoderDecoderModel&>(model).logits(src, tgt, 1, Ts, Tt);
    std::vector<std::string> out = char_labels(r.target), in = out;
    out.push_back(data::kEos);
    in.insert(in.begin(), data::kBos);
    if (r.part == "cross") {
      chart.row_labels = out;
      chart.col_labels = char_labels(r.text);
      chart.title = "cross-attention: output characters over the input";
      chart.subtitle =
          "rows: the output character each decoder position predicts; columns: input characters";
    } else {
      chart.row_labels = chart.col_labels = r.part == "encoder" ? char_labels(r.text) : in;
      chart.title = fmt::format("{} self-attention", r.part);
      chart.subtitle =
          "rows: query positions; columns: the keys they attend to (each row sums to 1)";
    }
  }

  const int64_t rows = int64_t(chart.row_labels.size()), cols = int64_t(chart.col_labels.size());
  for (int64_t l = 0; l < m.n_layer; ++l) {
    if (r.layer >= 0 && l != r.layer) continue;
    const Tensor& p = probs[size_t(l)];  // [1, NH, rows, cols]
    QKV_CHECK(p.defined() && p.shape() == Shape({1, m.n_head, rows, cols}),
              "attention: layer {} recorded no probabilities of the expected shape", l);
    for (int64_t h = 0; h < m.n_head; ++h) {
      if (r.head >= 0 && h != r.head) continue;
      const float* w = p.data() + h * rows * cols;
      chart.panels.push_back(
          {fmt::format("layer {} · head {}", l, h), std::vector<float>(w, w + rows * cols)});
    }
  }
  chart.panels_per_row = r.head >= 0 ? 1 : m.n_head;
  return chart;
}

}  // namespace qkv::inspect
