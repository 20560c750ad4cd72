// Using trained models: sampling text from a DecoderModel (with a KV cache), greedy and beam search
// for an EncoderDecoderModel, and filling masked characters with an EncoderModel. Every function
// runs without recording a graph and without dropout, at the precision the model was given.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/data/vocab.h"
#include "qkv/enum_names.h"
#include "qkv/nn/models.h"
#include "qkv/rng.h"

namespace qkv::generate {

// ---- decoder sampling (src/generate/sampling.cpp) ----

// How the window slides once the text outgrows block_size positions (see sample()): exact
// always shows the model the last block_size tokens (nanoGPT's idx[:, -block_size:]); chunked
// crops to the last block_size/2 and grows again, which is faster but shows less context.
enum class WindowPolicy { exact, chunked };
// Its names in flags and messages (--window chunked; see qkv/enum_names.h).
constexpr EnumNames<2> enum_names(WindowPolicy) { return {"exact", "chunked"}; }

struct SamplingOptions {
  int64_t max_new_tokens = 500;
  float temperature = 0.8f;  // logits are divided by it; 0 = greedy (argmax, no random draws)
  int64_t top_k = 200;       // draw among the k most likely tokens; 0 = all of them
  float top_p = 1.0f;        // nucleus: the fewest most likely tokens holding >= top_p of the mass
  // A sample ends as soon as its generated text (the prompt is not searched) ends with one of
  // these. The stop string is part of the sample, so a streamed sample shows why it ended.
  std::vector<std::string> stop;
  WindowPolicy window = WindowPolicy::exact;
  // false: recompute the whole window for every token (the reference the cache must match).
  bool use_cache = true;
};

// Throws qkv::Error for max_new_tokens < 0, a negative or non-finite temperature, top_k < 0,
// top_p outside (0, 1], or an empty stop string.
void validate(const SamplingOptions& options);

// Picks one id from logits [V]: argmax at temperature 0 (the lowest id among ties); otherwise
// softmax(logits / temperature) restricted by top_k, then by top_p, and one rng.uniform() draw.
// Candidates are ranked by logit, ties by id, so the draw depends only on the logits and rng.
int32_t sample_token(std::span<const float> logits, const SamplingOptions& options, Rng& rng);

// The ids of the k (<= size) highest scores, highest first, ties to the lower id: how
// sample_token and fill_masks rank candidates, and the greedy pick of beam search.
std::vector<int32_t> top_ids(std::span<const float> scores, int64_t k);

// What the per-token callback sees. The views are valid only during the call.
struct GeneratedToken {
  int32_t id;
  std::string_view text;          // the token's UTF-8 text
  std::span<const float> logits;  // the V logits it was drawn from
};
using TokenCallback = std::function<void(const GeneratedToken&)>;

struct Generation {
  std::vector<int32_t> tokens;  // generated ids, the prompt excluded
  std::string text;             // their text
  std::string stop;             // the stop string that ended the sample; empty otherwise
};

// Continues prompt (at least one id) with up to max_new_tokens tokens drawn from rng, calling
// on_token for each as it is produced.
//
// The window: the model sees at most block_size positions. The prompt is first cropped to its
// last block_size tokens. With the cache, each new token is one position of attention against
// the cached keys and values. When the window is full and one more token must go in, it slides
// as options.window says:
//   exact:   the oldest token leaves. Every token of the window now sits one position earlier
//            (the position encodings are absolute) and, past the first layer, attends to a
//            context without it, so every cached key and value is stale: the window is
//            recomputed by one pass over block_size positions, for every token.
//   chunked: the context is cropped to its last block_size/2 tokens (the new one included) and
//            the cache is rebuilt by one pass over them, which happens once per block_size/2
//            tokens, so a token costs O(1) positions on average instead of O(block_size).
// use_cache = false walks the same windows, recomputing each from scratch, so both paths give
// the same logits (up to float rounding) and the same tokens.
Generation sample(nn::DecoderModel& model, const data::Vocab& vocab,
                  std::span<const int32_t> prompt, const SamplingOptions& options, Rng& rng,
                  const TokenCallback& on_token = {});

// ---- beam search (src/generate/beam_search.cpp) ----

struct Hypothesis {
  std::vector<int32_t> tokens;  // the output, without the final <eos>
  double log_prob = 0;          // sum of the log-probabilities of tokens and <eos>
  double score = 0;             // log_prob / length^length_penalty, length = tokens.size() + 1
};

// Scores the next token of a generation of hypotheses. Hypothesis i of the new generation is
// hypothesis parents[i] of the previous generation followed by tokens[i]; the first call has
// empty spans and stands for the single empty output. Returns, row-major, one row of V
// log-probabilities per hypothesis (V taken from the size). Keeping per-hypothesis state (a
// KV cache) indexed like the hypotheses lets the caller follow the reordering.
using BeamStep = std::function<std::vector<float>(std::span<const int64_t> parents,
                                                  std::span<const int32_t> tokens)>;

struct BeamOptions {
  int64_t beam = 1;    // hypotheses kept per step; 1 = greedy decoding
  int64_t n_best = 1;  // finished hypotheses returned, best first; 1 <= n_best <= beam
  // alpha of the score log_prob / length^alpha (Marian's --normalize; GNMT's length penalty
  // without its +5): 0 ranks by log-probability alone, which favours short outputs; 1 ranks by
  // log-probability per token.
  double length_penalty = 1.0;
};

// The widest beam the qkv command takes (--beam, and serve's --max-beam): each step scores beam
// × vocabulary extensions, so the time a decode takes grows with it, and beyond a few the
// outputs rarely change (README, "Three model kinds"). The library takes any width: a test
// searches exhaustively with one.
inline constexpr int64_t kMaxBeam = 64;

// Throws qkv::Error for beam < 1, n_best outside [1, beam], or a negative or non-finite
// length_penalty.
void validate(const BeamOptions& options);

// Beam search for the n_best outputs of highest score, each at most max_length tokens before
// its <eos>. Each step ranks every one-token extension of the live hypotheses by
// log-probability: an <eos> among the `beam` best finishes its hypothesis, and the `beam` best
// others stay live. The greedy path's next hypothesis is kept whatever its rank, so greedy
// decoding's output is always a candidate and the best returned scores at least as high; beam
// = 1 follows the greedy path alone. Stops when n_best have finished and no live hypothesis can
// still beat the worst of them: a live one's log-probability only falls as it grows, so the
// best score it can reach is log_prob / (max_length + 1)^alpha. Returns the finished ones best
// first (ties: found first), fewer than n_best when fewer outputs exist.
std::vector<Hypothesis> beam_search(const BeamOptions& options, int64_t max_length, int32_t eos,
                                    const BeamStep& step);

struct TranslateOptions {
  BeamOptions search;
  std::optional<int64_t> max_length;  // output tokens at most; default block_size - 1, all the
                                      // decoder holds after <bos>
  bool use_cache = true;              // false: decode every prefix from scratch (the reference)
};

// Decodes source ids (without padding; at most block_size) into target ids: <bos>, then up to
// max_length tokens and <eos>; the other special tokens are never produced. The decoder keeps
// one KV cache per hypothesis. The vocab must hold <bos> and <eos>. Returns the n_best
// hypotheses, best first. Throws qkv::Error for bad options.
std::vector<Hypothesis> translate(nn::EncoderDecoderModel& model, const data::Vocab& vocab,
                                  std::span<const int32_t> source,
                                  const TranslateOptions& options = {});

// ---- encoder fill (src/generate/fill.cpp) ----

struct FilledPosition {
  int64_t position;  // character index in the text, from 0
  // (id, probability) of the most likely characters (never a special token), most likely
  // first; candidates[0] fills the position.
  std::vector<std::pair<int32_t, float>> candidates;
};

struct Fill {
  std::string text;  // the input with every mask character replaced
  std::vector<FilledPosition> positions;
};

// Encodes text with <mask> at each occurrence of mask_char (even one the vocab holds), runs
// the encoder once and fills each masked position with its most likely character, keeping the
// top_k (>= 1) candidates. Throws qkv::Error naming the problem for text without mask_char,
// text longer than block_size, a character outside the vocabulary (with its position), or a
// vocab without <mask>.
Fill fill_masks(nn::EncoderModel& model, const data::Vocab& vocab, std::string_view text,
                char32_t mask_char, int64_t top_k = 1);

}  // namespace qkv::generate
