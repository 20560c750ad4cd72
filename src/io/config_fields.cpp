// The config keys: what each sets, means and accepts.
#include "io/config_fields.h"

namespace qkv::io::detail {

#define QKV_REF(member) +[](Config& c) -> decltype((c.member)) { return c.member; }

constexpr Range kPositive{0, INFINITY, true, false};
constexpr Range kNonNegative{0, INFINITY, false, false};
constexpr Range kAtLeastOne{1, INFINITY, false, false};
constexpr Range kUnitOpenTop{0, 1, false, true};

const std::vector<Field>& fields() {
  static const std::vector<Field> f{
      {"data.path", QKV_REF(data.path),
       "training text: files (UTF-8, .zst, .jsonl), directories, globs, or a corpus prepared by "
       "`qkv data prepare`; for encoder_decoder one TSV of source<TAB>target lines"},
      {"data.val_fraction", QKV_REF(data.val_fraction),
       "fraction of the data, from the end, held out for validation", {0, 1, true, true}},
      {"data.mask_char", QKV_REF(data.mask_char),
       "encoder: the character that marks a position to fill in `qkv sample --fill`"},
      {"data.cache_dir", QKV_REF(data.cache_dir),
       "where raw text is prepared for training, once; empty: $XDG_CACHE_HOME/qkv/corpora"},
      {"data.jsonl_field", QKV_REF(data.jsonl_field), "the text field of .jsonl records"},
      {"model.kind", QKV_REF(model.kind), "model kind"},
      {"model.n_layer", QKV_REF(model.n_layer), "transformer layers (per stack)", kAtLeastOne},
      {"model.n_head", QKV_REF(model.n_head), "attention heads; must divide n_embd", kAtLeastOne},
      {"model.n_embd", QKV_REF(model.n_embd), "model width (channels)", kAtLeastOne},
      {"model.block_size", QKV_REF(model.block_size), "maximum sequence length", kAtLeastOne},
      {"model.ffn_hidden", QKV_REF(model.ffn_hidden),
       "feed-forward hidden width; 0 means 4 * n_embd (for swiglu, see activation)", kNonNegative},
      {"model.dropout", QKV_REF(model.dropout), "dropout probability", kUnitOpenTop},
      {"model.bias", QKV_REF(model.bias), "biases in Linear and LayerNorm layers"},
      {"model.pos_encoding", QKV_REF(model.pos_encoding),
       "positional encoding: vectors added to the token embeddings (learned, sinusoidal), or "
       "rotary on q and k of self-attention (rope)"},
      {"model.norm", QKV_REF(model.norm), "LayerNorm placement: pre (GPT-2) or post (original)"},
      {"model.tie_weights", QKV_REF(model.tie_weights),
       "share the token embedding with the output head"},
      {"model.rope_base", QKV_REF(model.rope_base),
       "pos_encoding = \"rope\": the pair (i, i + head_size/2) of q and k turns by the angle "
       "position * rope_base^(-2i/head_size)",
       {1, INFINITY, true, false}},
      {"model.norm_type", QKV_REF(model.norm_type),
       "the norms: LayerNorm, or RMSNorm (a gain, never a bias)"},
      {"model.qk_norm", QKV_REF(model.qk_norm),
       "RMS-normalise q and k of each attention head (no parameters), before rope"},
      {"model.activation", QKV_REF(model.activation),
       "the MLP's: GELU (erf), relu(x)^2, or SwiGLU (a third matrix; ffn_hidden 0 means "
       "8/3 * n_embd rounded up to a multiple of 64)"},
      {"model.zero_init_proj", QKV_REF(model.zero_init_proj),
       "attention and MLP output projections start at zero"},
      {"optim.lr", QKV_REF(optim.lr), "peak learning rate", kPositive},
      {"optim.min_lr", QKV_REF(optim.min_lr), "learning rate at the end of the decay",
       kNonNegative},
      {"optim.beta1", QKV_REF(optim.beta1), "AdamW beta1", kUnitOpenTop},
      {"optim.beta2", QKV_REF(optim.beta2), "AdamW beta2", kUnitOpenTop},
      {"optim.eps", QKV_REF(optim.eps), "AdamW epsilon", kPositive},
      {"optim.weight_decay", QKV_REF(optim.weight_decay),
       "AdamW decoupled weight decay; lr × weight_decay stays below 1", kNonNegative},
      {"optim.grad_clip", QKV_REF(optim.grad_clip),
       "clip gradients to this global L2 norm; 0 turns clipping off", kNonNegative},
      {"optim.decay_all", QKV_REF(optim.decay_all),
       "decay every parameter; false decays only matrices and embeddings (nanoGPT)"},
      {"optim.kind", QKV_REF(optim.kind),
       "adamw: AdamW for every parameter; muon: Muon for the matrices inside the blocks "
       "(attention and MLP), AdamW at lr for the rest (embeddings, lm_head, norms, biases)"},
      {"optim.muon_lr", QKV_REF(optim.muon_lr),
       "muon: Muon's peak learning rate; the schedule scales it by the factor it scales lr by",
       kPositive},
      {"optim.muon_momentum", QKV_REF(optim.muon_momentum), "muon: Muon's (Nesterov) momentum",
       kUnitOpenTop},
      {"schedule.decay", QKV_REF(schedule.decay), "learning-rate decay after warmup"},
      {"schedule.warmup_iters", QKV_REF(schedule.warmup_iters), "linear warmup iterations",
       kNonNegative},
      {"schedule.lr_decay_iters", QKV_REF(schedule.lr_decay_iters),
       "iteration at which the decay (cosine or wsd) reaches min_lr", kNonNegative},
      {"schedule.decay_fraction", QKV_REF(schedule.decay_fraction),
       "wsd: the last share of lr_decay_iters, over which lr falls linearly to min_lr",
       {0, 1, true, false}},
      {"train.batch_size", QKV_REF(train.batch_size), "sequences per micro-batch", kAtLeastOne},
      {"train.max_iters", QKV_REF(train.max_iters), "optimizer steps to train for", kNonNegative},
      // Bounded so that batch_size × grad_accum × processes (the global batch) stays an int64.
      {"train.grad_accum", QKV_REF(train.grad_accum), "micro-batches accumulated per step",
       {1, 1e6}},
      {"train.eval_interval", QKV_REF(train.eval_interval),
       "evaluate train and val loss every this many steps", kAtLeastOne},
      {"train.eval_iters", QKV_REF(train.eval_iters), "batches averaged per evaluation",
       kAtLeastOne},
      {"train.log_interval", QKV_REF(train.log_interval), "log a training line every this many steps",
       kAtLeastOne},
      {"train.seed", QKV_REF(train.seed), "seed for initialisation, data order and dropout",
       kNonNegative},
      {"train.threads", QKV_REF(train.threads), "threads for OpenMP and OpenBLAS; 0 means all cores",
       {0, 1024}},
      {"train.out_dir", QKV_REF(train.out_dir), "run directory (checkpoints, metrics, config)"},
      {"train.checkpoint_interval", QKV_REF(train.checkpoint_interval),
       "save a checkpoint every this many steps", kAtLeastOne},
      {"train.keep_last", QKV_REF(train.keep_last),
       "checkpoints kept (plus the best by val loss)", kAtLeastOne},
      {"train.precision", QKV_REF(train.precision),
       "what GEMMs compute in: bf16 (inputs rounded to bfloat16, fp32 sums) needs AVX512_BF16; "
       "auto picks bf16 where the CPU has it, else fp32"},
      {"train.overlap", QKV_REF(train.overlap),
       "with several processes, sum gradients in buckets during the backward, hiding the "
       "communication behind it; false sums them after the backward (the same bits either way)"},
      {"train.bucket_mb", QKV_REF(train.bucket_mb),
       "with overlap: MB of gradient sums (8 bytes per parameter) per bucket; smaller buckets "
       "start sooner, larger ones pay the network's latency less often",
       {0, 1e6, true, false}},
  };
  return f;
}

#undef QKV_REF

}  // namespace qkv::io::detail
