// `qkv sample`: text from a decoder (streamed), the output of an encoder_decoder for --input,
// or an encoder's fill of the masked characters in --fill. Needs only the checkpoint.
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <ranges>

#include "commands.h"
#include "qkv/cost.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"
#include "qkv/error_context.h"
#include "qkv/generate.h"
#include "qkv/io/regular_file.h"
#include "qkv/load.h"
#include "qkv/nn/models.h"
#include "qkv/runtime.h"

namespace qkv::cli {

namespace {

struct SampleArgs {
  std::string checkpoint, prompt, prompt_file, input, fill, mask_char;
  std::vector<std::string> stop;
  int64_t max_new_tokens = 500, top_k = 200, num_samples = 1, beam = 1, max_length = 0;
  float temperature = 0.8f, top_p = 1.0f;
  std::string window{enum_name(generate::SamplingOptions{}.window)};
  double length_penalty = generate::BeamOptions{}.length_penalty;
  uint64_t seed = 1337;
  // One token at a time is many small parallel regions: one thread is fastest for the models
  // qkv trains (docs/scaling.md).
  int threads = 1;
  bool quiet = false;
  std::string precision = "auto";
  Precision compute = Precision::fp32;  // --precision on this CPU
};

// A word the shell reads back unchanged: as is when it is safe, 'text', or $'...' when it
// holds control characters.
std::string shell_quote(std::string_view s) {
  const bool safe = !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) ||
           std::string_view("_-./:=+,@%").find(char(c)) != std::string_view::npos;
  });
  if (safe) return std::string(s);
  bool plain = true;
  for (unsigned char c : s) plain = plain && c >= 0x20 && c != 0x7F;
  if (plain) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }
  std::string out = "$'";
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\\' || c == '\'')
      out += std::string("\\") + char(c);
    else if (c < 0x20 || c == 0x7F)
      out += fmt::format("\\x{:02x}", c);
    else
      out += char(c);
  }
  return out + "'";
}

// Tokens stream as they come; once stdout refuses them (a full disk), generating more is
// wasted: stop with the error main would give at the end.
void flush_stdout() {
  const bool flushed = std::fflush(stdout) == 0;
  QKV_CHECK(flushed, "standard output: cannot write: {}", std::strerror(errno));
}

// Which model kinds each kind-specific option applies to; giving one to another kind is an error.
void check_options_fit(const CLI::App& cmd, nn::ModelKind kind) {
  using enum nn::ModelKind;
  static const std::map<std::string, std::vector<nn::ModelKind>> applies = {
      {"--prompt", {decoder}},
      {"--prompt-file", {decoder}},
      {"--max-new-tokens", {decoder}},
      {"--temperature", {decoder}},
      {"--top-p", {decoder}},
      {"--seed", {decoder}},
      {"--stop", {decoder}},
      {"--window", {decoder}},
      {"--input", {encoder_decoder}},
      {"--beam", {encoder_decoder}},
      {"--fill", {encoder}},
      {"--mask-char", {encoder}},
      {"--length-penalty", {encoder_decoder}},
      {"--max-length", {encoder_decoder}},
      {"--top-k", {decoder, encoder}},
      {"--num-samples", {decoder, encoder_decoder}}};
  static const std::map<nn::ModelKind, std::string> use = {
      {decoder, "--prompt TEXT"}, {encoder_decoder, "--input TEXT"}, {encoder, "--fill TEXT"}};
  for (const auto& [option, kinds] : applies)
    QKV_CHECK(cmd.count(option) == 0 || std::find(kinds.begin(), kinds.end(), kind) != kinds.end(),
              "{} is for {} models; this checkpoint's model.kind is {} (use {})", option,
              fmt::join(kinds | std::views::transform(enum_name<nn::ModelKind>), " and "),
              enum_name(kind), use.at(kind));
}

void print_header(const SampleArgs& a, const std::string& dir, const std::string& settings) {
  if (!a.quiet)
    std::fprintf(stderr, "# qkv sample %s %s --threads %d --precision %s\n",
                 shell_quote(dir).c_str(), settings.c_str(), num_threads(),
                 std::string(enum_name(a.compute)).c_str());
}

int sample_decoder(const SampleArgs& a, const CLI::App& cmd, const load::LoadedModel& m) {
  const data::Vocab& vocab = m.vocab;
  QKV_CHECK(a.top_k >= 1, "--top-k {} must be at least 1", a.top_k);
  QKV_CHECK(a.num_samples >= 1, "--num-samples {} must be at least 1", a.num_samples);
  const generate::SamplingOptions options{.max_new_tokens = a.max_new_tokens,
                                          .temperature = a.temperature,
                                          .top_k = a.top_k,
                                          .top_p = a.top_p,
                                          .stop = a.stop,
                                          .window = *parse_enum<generate::WindowPolicy>(a.window)};
  generate::validate(options);
  std::string prompt = a.prompt, prompt_setting;
  if (cmd.count("--prompt-file")) {
    prompt = in_context("--prompt-file ", [&] { return io::read_regular_file(a.prompt_file); });
    prompt_setting = "--prompt-file " + shell_quote(a.prompt_file);
  } else {
    if (!cmd.count("--prompt")) {
      // nanoGPT's default start: a newline.
      prompt = "\n";
      QKV_CHECK(std::binary_search(vocab.chars().begin(), vocab.chars().end(), U'\n'),
                "no --prompt given, and the vocabulary has no newline to start from; give "
                "--prompt TEXT");
    }
    QKV_CHECK(!prompt.empty(), "--prompt is empty; give at least one character");
    prompt_setting = "--prompt " + shell_quote(prompt);
  }
  const std::vector<int32_t> ids = vocab.encode(prompt, "prompt");
  cost::check_generation_fits(m.model_config, 1, a.max_new_tokens,
                              fmt::format("--max-new-tokens {}", a.max_new_tokens));
  auto& model = static_cast<nn::DecoderModel&>(*m.model);
  std::string settings = fmt::format(
      "--seed {} --max-new-tokens {} --temperature {} --top-k {} --top-p {} --window {} "
      "--num-samples {} {}",
      a.seed, a.max_new_tokens, a.temperature, a.top_k, a.top_p, a.window, a.num_samples,
      prompt_setting);
  for (const std::string& s : a.stop) settings += " --stop " + shell_quote(s);
  print_header(a, m.dir, settings);
  for (int64_t i = 0; i < a.num_samples; ++i) {
    if (i > 0) std::fputs("---------------\n", stdout);
    std::fputs(prompt.c_str(), stdout);
    flush_stdout();
    // Sample i draws from stream i, so it does not depend on how long the others ran.
    Rng rng(a.seed, uint64_t(i));
    const generate::Generation g =
        generate::sample(model, vocab, ids, options, rng, [](const generate::GeneratedToken& t) {
          std::fwrite(t.text.data(), 1, t.text.size(), stdout);
          flush_stdout();
        });
    const std::string& all = g.text.empty() ? prompt : g.text;
    if (all.back() != '\n') std::fputs("\n", stdout);
  }
  return 0;
}

int sample_encoder_decoder(const SampleArgs& a, const CLI::App& cmd, const load::LoadedModel& m) {
  const nn::ModelConfig& mc = m.model_config;
  const data::Vocab& vocab = m.vocab;
  QKV_CHECK(cmd.count("--input"),
            "this checkpoint's model.kind is encoder_decoder: give --input TEXT");
  QKV_CHECK(a.num_samples <= a.beam,
            "--num-samples {} must be between 1 and --beam {}: a beam of N keeps N hypotheses; "
            "give --beam {} or more",
            a.num_samples, a.beam, a.num_samples);
  const int64_t most = mc.block_size - 1;
  const int64_t max_length = cmd.count("--max-length") ? a.max_length : most;
  QKV_CHECK(max_length >= 1 && max_length <= most,
            "--max-length {} must be between 1 and {}: the decoder holds block_size = {} "
            "positions, <bos> and the output",
            max_length, most, mc.block_size);
  cost::check_generation_fits(mc, a.beam, mc.block_size, fmt::format("--beam {}", a.beam));
  const std::vector<int32_t> source = vocab.encode(a.input, "input");
  auto& model = static_cast<nn::EncoderDecoderModel&>(*m.model);
  print_header(
      a, m.dir,
      fmt::format("--input {} --beam {} --num-samples {} --length-penalty {} "
                  "--max-length {}",
                  shell_quote(a.input), a.beam, a.num_samples, a.length_penalty, max_length));
  const std::vector<generate::Hypothesis> hyps = generate::translate(
      model, vocab, source,
      {.search = {.beam = a.beam, .n_best = a.num_samples, .length_penalty = a.length_penalty},
       .max_length = max_length});
  // One output alone is printed as is; several, best first, each with what ranked it.
  if (a.num_samples == 1) {
    std::printf("%s\n", vocab.decode(hyps.front().tokens).c_str());
    return 0;
  }
  for (const generate::Hypothesis& h : hyps)
    std::printf("score %.4f  log-prob %.4f  %s\n", h.score, h.log_prob,
                shell_quote(vocab.decode(h.tokens)).c_str());
  return 0;
}

int sample_encoder(const SampleArgs& a, const CLI::App& cmd, const load::LoadedModel& m) {
  QKV_CHECK(cmd.count("--fill"), "this checkpoint's model.kind is encoder: give --fill TEXT");
  const bool candidates = cmd.count("--top-k") > 0;
  QKV_CHECK(a.top_k >= 1, "--top-k {} must be at least 1", a.top_k);
  const std::string mask = cmd.count("--mask-char") ? a.mask_char : m.config.data.mask_char;
  const std::u32string mask_cps = data::decode_utf8(mask, "--mask-char");
  QKV_CHECK(mask_cps.size() == 1, "--mask-char '{}' must be exactly one character", mask);
  auto& model = static_cast<nn::EncoderModel&>(*m.model);
  print_header(a, m.dir,
               fmt::format("--fill {} --mask-char {}{}", shell_quote(a.fill), shell_quote(mask),
                           candidates ? fmt::format(" --top-k {}", a.top_k) : ""));
  const generate::Fill fill =
      generate::fill_masks(model, m.vocab, a.fill, mask_cps[0], candidates ? a.top_k : 1);
  std::printf("%s\n", fill.text.c_str());
  if (candidates)
    for (const generate::FilledPosition& p : fill.positions) {
      std::string line = fmt::format("position {}:", p.position);
      for (const auto& [id, prob] : p.candidates)
        line += fmt::format("  {} {:.4f}", data::describe_char(m.vocab.chars()[size_t(id)]), prob);
      std::printf("%s\n", line.c_str());
    }
  return 0;
}

}  // namespace

void add_sample(CLI::App& app, std::function<int()>& run, const Environment& env) {
  auto a = std::make_shared<SampleArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sample",
      "Generate with a checkpoint: text (decoder), --input (encoder_decoder), --fill "
      "(encoder)");
  cmd->add_option("checkpoint", a->checkpoint, "Run directory or checkpoint directory")->required();
  auto* prompt =
      cmd->add_option("--prompt", a->prompt, "decoder: text to continue (default: a newline)");
  cmd->add_option("--prompt-file", a->prompt_file, "decoder: read the prompt from this file")
      ->excludes(prompt);
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "decoder: tokens per sample (default 500)")
      ->check(at_least(0));
  cmd->add_option("--temperature", a->temperature,
                  "decoder: 0 = greedy, <1 safer, >1 wilder (default 0.8)");
  cmd->add_option("--top-k", a->top_k,
                  "decoder: draw among the K most likely tokens (default 200); encoder: show the K "
                  "best candidates per masked position");
  cmd->add_option("--top-p", a->top_p, "decoder: nucleus sampling, in (0, 1] (default 1 = off)");
  cmd->add_option("--num-samples", a->num_samples,
                  "decoder: how many samples (default 1); encoder_decoder: print the K best "
                  "outputs of the beam search, best first, with their scores (at most --beam)")
      ->check(at_least(1));
  cmd->add_option("--seed", a->seed,
                  "decoder: sample i draws from stream i of this seed (default 1337)")
      ->check(at_least(0));
  cmd->add_option("--stop", a->stop,
                  "decoder: end a sample when its text ends with this string (printed; repeatable; "
                  "bash's $'\\n' gives a newline)");
  cmd->add_option("--window", a->window,
                  "decoder: what the model sees past block_size tokens: exact = always the last "
                  "block_size, as nanoGPT (a pass over the window per token); chunked = the last "
                  "block_size/2, then growing again (faster; the text differs) (default " +
                      a->window + ")")
      ->type_name("POLICY")
      ->check(CLI::IsMember({"exact", "chunked"}));
  cmd->add_option("--input", a->input, "encoder_decoder: the source text to decode");
  cmd->add_option("--beam", a->beam,
                  fmt::format("encoder_decoder: beam width, 1 to {} (default 1 = greedy); the "
                              "greedy output is always a candidate, so a beam never scores below "
                              "it",
                              generate::kMaxBeam))
      ->check(between(1, generate::kMaxBeam));
  add_length_penalty_option(*cmd, a->length_penalty);
  cmd->add_option("--max-length", a->max_length,
                  "encoder_decoder: output characters at most (default block_size - 1)");
  cmd->add_option("--fill", a->fill, "encoder: text whose mask characters are filled in");
  cmd->add_option("--mask-char", a->mask_char,
                  "encoder: the mask character (default: data.mask_char)");
  cmd->add_flag("--quiet", a->quiet, "No header line on stderr");
  cmd->add_option("--threads", a->threads, "Threads (0 = all cores; default 1)")
      ->check(at_least(0));
  add_precision_option(*cmd, a->precision);
  on_run(*cmd, run, [a, cmd, env]() -> int {
    set_num_threads(a->threads);
    a->compute = chosen_precision(a->precision, env);
    const load::LoadedModel m = load::load_model(a->checkpoint, {.precision = a->compute});
    const nn::ModelKind kind = m.model_config.kind;
    check_options_fit(*cmd, kind);
    if (kind == nn::ModelKind::decoder) return sample_decoder(*a, *cmd, m);
    if (kind == nn::ModelKind::encoder_decoder) return sample_encoder_decoder(*a, *cmd, m);
    return sample_encoder(*a, *cmd, m);
  });
}

}  // namespace qkv::cli
