// A model's cost. Activations count what one layer keeps for its backward per position
// (attention's inputs, q, k, v and output; the MLP's two hidden activations), not attention's
// T×T probabilities, which the fused attention never stores during training.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "qkv/cost.h"
#include "qkv/error.h"

namespace qkv::cost {
namespace {

constexpr double kFloat = 4;  // bytes

double cgroup_limit() {
  for (const char* file :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(file);
    std::string value;
    if (in >> value && !value.empty() && value.find_first_not_of("0123456789") == std::string::npos)
      return std::stod(value);
  }
  return INFINITY;
}

// Layers, counting both stacks of an encoder-decoder (whose decoder layers also cross-attend).
double layers(const nn::ModelConfig& m) {
  return m.kind == nn::ModelKind::encoder_decoder ? 2.0 * double(m.n_layer) : double(m.n_layer);
}

// ModelConfig::ffn() in double: in int64 it would overflow for the sizes this file refuses.
double ffn(const nn::ModelConfig& m) {
  if (m.ffn_hidden > 0) return double(m.ffn_hidden);
  if (m.activation == nn::Activation::swiglu) return std::ceil(8.0 * double(m.n_embd) / 192) * 64;
  return 4.0 * double(m.n_embd);
}

// The MLP's matrices of C·F weights: fc and proj, and swiglu's gate.
double mlp_matrices(const nn::ModelConfig& m) {
  return m.activation == nn::Activation::swiglu ? 3 : 2;
}

double parameters(const nn::ModelConfig& m) {
  const double C = double(m.n_embd), V = double(m.vocab_size), T = double(m.block_size);
  const double cross = m.kind == nn::ModelKind::encoder_decoder ? double(m.n_layer) * 4 * C * C : 0;
  const double positions = m.pos_encoding == nn::PosEncoding::rope ? 0 : T * C;
  return layers(m) * (4 * C * C + mlp_matrices(m) * C * ffn(m)) + cross +
         V * C * (m.tie_weights ? 1 : 2) + positions;
}

// One stack of n_layer layers over B sequences of T tokens: attention's 4C² and the MLP's 2CF
// (swiglu: 3CF) weights per token, and attention's 12·C per query per key.
double stack_flops(const nn::ModelConfig& m, int64_t B, int64_t T) {
  const double C = double(m.n_embd), F = ffn(m), N = double(B * T);
  return N * double(m.n_layer) * (6.0 * (4 * C * C + mlp_matrices(m) * C * F) + 12.0 * C * double(T));
}

// The output head's: V·C weights per predicted token.
double head_flops(const nn::ModelConfig& m, int64_t tokens) {
  return 6.0 * double(m.vocab_size) * double(m.n_embd) * double(tokens);
}

std::string gb(double bytes) { return fmt::format("{:.3g} GB", bytes / 1e9); }

void check_fits(double need, const char* what, const char* lower) {
  const double have = usable_memory_bytes();
  QKV_CHECK(need <= have, "{} needs ~{}, the machine has {}; lower {}", what, gb(need), gb(have),
            lower);
}

}  // namespace

double training_flops(const nn::ModelConfig& m, int64_t B, int64_t T) {
  return stack_flops(m, B, T) + head_flops(m, B * T);
}

// The cross-attention layers add q and proj (C² each) per target token, kv (2C²) per source
// token, and 12·C per target token per source key.
double training_flops(const nn::ModelConfig& m, int64_t B, int64_t Ts, int64_t Tt) {
  const double C = double(m.n_embd), L = double(m.n_layer);
  const double cross = L * (double(B * Tt) * (6.0 * 2 * C * C + 12.0 * C * double(Ts)) +
                            double(B * Ts) * 6.0 * 2 * C * C);
  return stack_flops(m, B, Ts) + stack_flops(m, B, Tt) + cross + head_flops(m, B * Tt);
}

double usable_memory_bytes() {
  const double physical = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
  struct rlimit as;
  const double address_space = ::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY
                                   ? double(as.rlim_cur)
                                   : INFINITY;
  return std::min({physical, cgroup_limit(), address_space});
}

double model_bytes(const nn::ModelConfig& m) { return kFloat * parameters(m); }

double training_bytes(const nn::ModelConfig& m, int64_t batch_size) {
  const double C = double(m.n_embd), V = double(m.vocab_size);
  const double positions = double(batch_size) * double(m.block_size);
  const double per_position = layers(m) * (10 * C + (mlp_matrices(m) + 1) * ffn(m)) + 3 * V + 2 * C;
  return 4 * model_bytes(m) + kFloat * positions * per_position;
}

double generation_bytes(const nn::ModelConfig& m, int64_t sequences, int64_t tokens) {
  const double C = double(m.n_embd), V = double(m.vocab_size);
  const double cached = std::min(double(tokens), double(m.block_size));
  const double caches = m.kind == nn::ModelKind::encoder_decoder ? 2 : 1;  // self and cross
  const double per_sequence =
      kFloat * (2 * layers(m) * caches * C * cached + V) + 8 * double(tokens);
  return model_bytes(m) + double(sequences) * per_sequence;
}

void check_model_fits(const nn::ModelConfig& m) {
  check_fits(model_bytes(m), "the model", "model.n_layer, model.n_embd or model.ffn_hidden");
}

void check_training_fits(const nn::ModelConfig& m, int64_t batch_size) {
  check_fits(training_bytes(m, batch_size),
             "training (the weights, their gradients, AdamW's state and one step's activations)",
             "model.n_layer, model.n_embd, model.ffn_hidden, model.block_size or "
             "train.batch_size");
}

void check_generation_fits(const nn::ModelConfig& m, int64_t sequences, int64_t tokens,
                           const std::string& flag) {
  const std::string what = fmt::format("{} (the model and {} sequence{} of up to {} tokens)", flag,
                                       sequences, sequences == 1 ? "" : "s", tokens);
  check_fits(generation_bytes(m, sequences, tokens), what.c_str(),
             flag.substr(0, flag.find(' ')).c_str());
}

}  // namespace qkv::cost
