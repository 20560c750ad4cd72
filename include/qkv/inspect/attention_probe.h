// What `qkv attention` shows: runs a model on one text with its attention modules recording,
// and lays the probabilities out as heatmap panels.
#pragma once

#include <cstdint>
#include <string>

#include "qkv/data/vocab.h"
#include "qkv/io/config.h"
#include "qkv/nn/module.h"
#include "qkv/plot/attention_plot.h"

namespace qkv::inspect {

struct AttentionRequest {
  std::string text;               // decoder, encoder: the prompt; encoder_decoder: the source
  std::string target;             // encoder_decoder: the output, teacher-forced (required)
  std::string part = "cross";     // encoder_decoder: cross | encoder | decoder attention
  int64_t layer = -1, head = -1;  // -1: every layer / head
  // What the caller calls each field, for errors: `qkv attention`'s flags, or an API's
  // parameters. `source` is text's name for an encoder-decoder.
  struct Names {
    std::string text = "--prompt", source = "--input", target = "--target", part = "--part",
                layer = "--layer", head = "--head";
  } names;
};

// model must be the model (qkv/nn/models.h) that config.model.kind names, built with
// vocab; it runs without dropout and without grad. Panels are (layer, head), one grid row per
// layer. Rows are query positions, columns keys; for cross-attention a row is labelled with the
// output character it predicts. An encoder reads config.data.mask_char as <mask>. Throws qkv::Error
// for an unknown character (naming it and its position), a text longer than the block size, or a
// layer, head or part the model does not have.
plot::AttentionChart probe_attention(nn::Module& model, const io::Config& config,
                                     const data::Vocab& vocab, const AttentionRequest& request);

}  // namespace qkv::inspect
