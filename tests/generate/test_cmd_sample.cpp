// `qkv sample` and the exact match of `qkv eval`, run as the command runs them, on checkpoints
// of small random models.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "qkv/environment.h"
#include "generate/models.h"
#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/runtime.h"

using namespace qkv;
using qkv::testing::TempDir;

namespace {

// What --precision auto computes in here.
Precision auto_precision() {
  return choose_precision(PrecisionSetting::automatic, "",
                          bf16_support(std::getenv("QKV_CPU_BF16")))
      .precision;
}

struct Output {
  std::string out, err;
};

// Reads what fd wrote into the temporary file while `body` ran.
class Capture {
 public:
  explicit Capture(int fd) : fd_(fd), file_(std::tmpfile()), saved_(::dup(fd)) {
    std::fflush(nullptr);
    ::dup2(::fileno(file_), fd_);
  }
  std::string finish() {
    std::fflush(nullptr);
    ::dup2(saved_, fd_);
    ::close(saved_);
    saved_ = -1;
    std::rewind(file_);
    std::string text;
    for (int c; (c = std::fgetc(file_)) != EOF;) text += char(c);
    return text;
  }
  ~Capture() {
    if (saved_ >= 0) finish();
    std::fclose(file_);
  }

 private:
  int fd_;
  std::FILE* file_;
  int saved_;
};

// Parses argv as `qkv` does and runs the chosen command; a qkv::Error propagates.
Output qkv_run(std::vector<std::string> args) {
  CLI::App app;
  std::function<int()> run;
  const Environment env = read_environment();
  cli::add_sample(app, run, env);
  cli::add_eval(app, run, env);
  args.insert(args.begin(), "qkv");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  app.parse(int(argv.size()), argv.data());
  Capture out(1), err(2);
  const int status = run();  // outside REQUIRE, so a qkv::Error reaches the caller
  REQUIRE(status == 0);
  return {out.finish(), err.finish()};
}

// The one-line message of the qkv::Error that the command throws.
std::string error_of(std::vector<std::string> args) {
  try {
    qkv_run(std::move(args));
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

struct Runs {
  TempDir dir{"cmd_sample"};
  data::Vocab text = testing::text_vocab(), masked = testing::mask_vocab(),
              pairs = testing::pair_vocab();
  std::string decoder, encoder;
  Runs() {
    const io::Config dc = testing::tiny_config(nn::ModelKind::decoder);
    decoder = testing::save_run(dir.path() / "dec", dc, text,
                                *testing::make_model<nn::DecoderModel>(dc, text, 3));
    const io::Config ec = testing::tiny_config(nn::ModelKind::encoder);
    encoder = testing::save_run(dir.path() / "enc", ec, masked,
                                *testing::make_model<nn::EncoderModel>(ec, masked, 7));
  }
};

}  // namespace

TEST_CASE("qkv sample: a decoder streams prompt and tokens; the seed fixes the text") {
  Runs r;
  const Output a = qkv_run({"sample", r.decoder, "--prompt", "the cat", "--max-new-tokens", "30",
                            "--seed", "7", "--quiet"});
  CHECK(a.err.empty());
  REQUIRE(a.out.size() >= 38);
  CHECK(a.out.substr(0, 7) == "the cat");
  CHECK(a.out.back() == '\n');
  CHECK(qkv_run({"sample", r.decoder, "--prompt", "the cat", "--max-new-tokens", "30", "--seed",
                 "7", "--quiet"})
            .out == a.out);
  CHECK(qkv_run({"sample", r.decoder, "--prompt", "the cat", "--max-new-tokens", "30", "--seed",
                 "8", "--quiet"})
            .out != a.out);

  // The library's generation with the same settings (the precision --precision auto chose) is
  // what was printed.
  auto model = testing::make_model<nn::DecoderModel>(testing::tiny_config(nn::ModelKind::decoder),
                                                     r.text, 3);
  model->set_precision(auto_precision());
  Rng rng(7, 0);
  const generate::Generation g =
      generate::sample(*model, r.text, r.text.encode("the cat"), {.max_new_tokens = 30}, rng);
  CHECK(a.out.substr(7, 30) == g.text);
}

TEST_CASE("qkv sample: the header echoes the settings; samples are separated") {
  Runs r;
  const Output o =
      qkv_run({"sample", r.decoder, "--prompt", "a\nb", "--max-new-tokens", "5", "--num-samples",
               "3", "--temperature", "0", "--stop", "x y", "--threads", "1"});
  CHECK(o.err ==
        "# qkv sample " + r.decoder +
            "/checkpoint-0 --seed 1337 --max-new-tokens 5 --temperature 0 --top-k 200 "
            "--top-p 1 --window exact --num-samples 3 --prompt $'a\\nb' --stop 'x y' --threads 1 " +
            "--precision " + std::string(enum_name(auto_precision())) + "\n");
  // Greedy: three identical samples, two separators.
  const std::string one = o.out.substr(0, o.out.find("---------------\n"));
  CHECK(o.out == one + "---------------\n" + one + "---------------\n" + one);
}

TEST_CASE("qkv sample: bad arguments are one-line errors") {
  Runs r;
  auto dec = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"sample", r.decoder});
    return error_of(extra);
  };
  CHECK(dec({"--prompt", "the cat!"}) ==
        "prompt: character '!' (U+0021) at position 7 is not in the vocabulary of " + r.decoder +
            "/checkpoint-0/vocab.json (" + std::to_string(r.text.size()) + " symbols)");
  CHECK(dec({"--top-p", "1.5"}) == "sample: top-p = 1.5 is outside (0, 1] (1 keeps every token)");
  CHECK(dec({"--temperature", "-0.5"}) ==
        "sample: temperature = -0.5 must be a number >= 0 (0 means greedy)");
  CHECK(dec({"--top-k", "0"}) == "--top-k 0 must be at least 1");
  // Flags with a lower bound are refused while parsing, before the checkpoint is read.
  CHECK_THROWS_WITH(
      qkv_run({"sample", r.decoder, "--num-samples", "0"}),
      "--num-samples: expected a whole number from 1 to 9223372036854775807, got '0'");
  CHECK(dec({"--input", "abc"}) ==
        "--input is for encoder_decoder models; this checkpoint's model.kind is decoder (use "
        "--prompt TEXT)");
  CHECK(dec({"--prompt-file", (r.dir.path() / "missing.txt").string()}) ==
        "--prompt-file " + (r.dir.path() / "missing.txt").string() +
            ": cannot open: No such file or directory");
  CHECK(error_of({"sample", r.encoder, "--prompt", "the"}) ==
        "--prompt is for decoder models; this checkpoint's model.kind is encoder (use --fill "
        "TEXT)");
  CHECK(error_of({"sample", r.encoder}) ==
        "this checkpoint's model.kind is encoder: give --fill TEXT");
  CHECK(error_of({"sample", r.encoder, "--fill", "a_", "--mask-char", "ab"}) ==
        "--mask-char 'ab' must be exactly one character");
}

TEST_CASE("qkv sample: an encoder fills the masked characters, with candidates on request") {
  Runs r;
  auto model = testing::make_model<nn::EncoderModel>(testing::tiny_config(nn::ModelKind::encoder),
                                                     r.masked, 7);
  const generate::Fill fill = generate::fill_masks(*model, r.masked, "the c_t", U'_', 2);
  CHECK(qkv_run({"sample", r.encoder, "--fill", "the c_t", "--quiet"}).out == fill.text + "\n");
  const Output o = qkv_run({"sample", r.encoder, "--fill", "the c_t", "--top-k", "2", "--quiet"});
  std::istringstream lines(o.out);
  std::string first, second, rest;
  std::getline(lines, first);
  std::getline(lines, second);
  CHECK(first == fill.text);
  CHECK(second.rfind("position 5:  '", 0) == 0);
  CHECK(std::count(second.begin(), second.end(), '(') == 2);  // two "(U+....)" candidates
  CHECK_FALSE(std::getline(lines, rest));
  // The mask character comes from the config (data.mask_char = "_") unless given.
  CHECK(qkv_run({"sample", r.encoder, "--fill", "the c*t", "--mask-char", "*", "--quiet"}).out ==
        fill.text + "\n");
}

TEST_CASE(
    "qkv sample and qkv eval: an encoder_decoder decodes --input and is scored by exact match") {
  Runs r;
  const io::Config base = testing::tiny_config(nn::ModelKind::encoder_decoder);
  auto model = testing::make_model<nn::EncoderDecoderModel>(base, r.pairs, 6);
  model->set_precision(auto_precision());
  // A TSV whose targets are the model's own greedy outputs for the even lines and something
  // else for the odd ones: exact match must count exactly the even lines.
  const std::vector<std::string> sources = {"abc",   "hgf", "ddd", "bca", "eh",
                                            "ffgab", "a",   "cc",  "hhh", "gfe"};
  std::string tsv;
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto best = generate::translate(*model, r.pairs, r.pairs.encode(sources[i]));
    std::string target = r.pairs.decode(best.front().tokens);
    if (i % 2) target = target == "abc" ? "abd" : "abc";
    tsv += sources[i] + "\t" + target + "\n";
  }
  io::Config c = base;
  c.data.path = {r.dir.write("pairs.tsv", tsv)};
  c.data.val_fraction = 0.5;  // the last five lines: three even, two odd
  c.train.eval_iters = 1;
  c.train.batch_size = 2;
  const std::string run = testing::save_run(r.dir.path() / "encdec", c, r.pairs, *model);

  const auto best =
      generate::translate(*model, r.pairs, r.pairs.encode("abc"), {.search = {.beam = 2}});
  CHECK(qkv_run({"sample", run, "--input", "abc", "--beam", "2", "--quiet"}).out ==
        r.pairs.decode(best.front().tokens) + "\n");
  CHECK(error_of({"sample", run}) ==
        "this checkpoint's model.kind is encoder_decoder: give --input TEXT");
  CHECK_THROWS_WITH(qkv_run({"sample", run, "--input", "abc", "--beam", "0"}),
                    "--beam: expected a whole number from 1 to 64, got '0'");

  const std::string val = qkv_run({"eval", run}).out;
  INFO(val);
  CHECK(val.find("exact match 40.00% (2 of 5, val split, greedy)") != std::string::npos);
  const std::string all = qkv_run({"eval", run, "--data", c.data.path.front()}).out;
  CHECK(all.find("exact match 50.00% (5 of 10, whole file, greedy)") != std::string::npos);
  CHECK(error_of({"eval", r.decoder, "--beam", "2"}) ==
        "--beam is for encoder_decoder models; this checkpoint's model.kind is decoder");
  CHECK(qkv_run({"eval", run, "--beam", "3", "--length-penalty", "0"})
            .out.find("of 5, val split, beam 3, length penalty 0)") != std::string::npos);
}

TEST_CASE("qkv sample: --num-samples K prints an encoder_decoder's K best outputs, best first") {
  Runs r;
  const io::Config c = testing::tiny_config(nn::ModelKind::encoder_decoder);
  auto model = testing::make_model<nn::EncoderDecoderModel>(c, r.pairs, 21);
  const std::string run = testing::save_run(r.dir.path() / "encdec", c, r.pairs, *model);
  // What the command computes in: the precision --precision auto chooses.
  model->set_precision(auto_precision());
  for (double alpha : {0.0, 1.0}) {
    CAPTURE(alpha);
    const std::vector<generate::Hypothesis> best = generate::translate(
        *model, r.pairs, r.pairs.encode("abc"),
        {.search = {.beam = 4, .n_best = 3, .length_penalty = alpha}, .max_length = 9});
    REQUIRE(best.size() == 3);
    std::string expected;
    for (const generate::Hypothesis& h : best) {
      const std::string text = r.pairs.decode(h.tokens);
      expected += fmt::format("score {:.4f}  log-prob {:.4f}  {}\n", h.score, h.log_prob,
                              text.empty() ? "''" : text);
    }
    CHECK(qkv_run({"sample", run, "--input", "abc", "--beam", "4", "--num-samples", "3",
                   "--length-penalty", fmt::format("{}", alpha), "--max-length", "9", "--quiet"})
              .out == expected);
    CHECK(best[0].score >= best[1].score);
    CHECK(best[1].score >= best[2].score);
  }
  const Output o = qkv_run({"sample", run, "--input", "abc", "--beam", "2", "--num-samples", "2"});
  CHECK(o.err.find("--input abc --beam 2 --num-samples 2 --length-penalty 1 --max-length 15 ") !=
        std::string::npos);

  CHECK(error_of({"sample", run, "--input", "abc", "--beam", "3", "--num-samples", "4"}) ==
        "--num-samples 4 must be between 1 and --beam 3: a beam of N keeps N hypotheses; give "
        "--beam 4 or more");
  CHECK(error_of({"sample", run, "--input", "abc", "--max-length", "16"}) ==
        "--max-length 16 must be between 1 and 15: the decoder holds block_size = 16 positions, "
        "<bos> and the output");
  CHECK(error_of({"sample", run, "--input", "abc", "--window", "chunked"}) ==
        "--window is for decoder models; this checkpoint's model.kind is encoder_decoder (use "
        "--input TEXT)");
  for (const char* alpha : {"-1", "inf", "x"}) {
    const std::string message = fmt::format("expected a number >= 0, got '{}'", alpha);
    CHECK_THROWS_WITH_AS(qkv_run({"sample", run, "--input", "abc", "--length-penalty", alpha}),
                         doctest::Contains(message.c_str()), CLI::ValidationError);
  }
  CHECK(error_of({"sample", r.decoder, "--length-penalty", "0"}) ==
        "--length-penalty is for encoder_decoder models; this checkpoint's model.kind is decoder "
        "(use --prompt TEXT)");
}

TEST_CASE("qkv sample: --window chunked prints the library's chunked text past block_size") {
  Runs r;
  auto model = testing::make_model<nn::DecoderModel>(testing::tiny_config(nn::ModelKind::decoder),
                                                     r.text, 3);
  model->set_precision(auto_precision());
  for (generate::WindowPolicy policy :
       {generate::WindowPolicy::exact, generate::WindowPolicy::chunked}) {
    CAPTURE(enum_name(policy));
    Rng rng(7, 0);
    const generate::Generation g = generate::sample(*model, r.text, r.text.encode("the cat"),
                                                    {.max_new_tokens = 48, .window = policy}, rng);
    CHECK(qkv_run({"sample", r.decoder, "--prompt", "the cat", "--max-new-tokens", "48", "--seed",
                   "7", "--window", std::string(enum_name(policy)), "--quiet"})
              .out == "the cat" + g.text + (g.text.ends_with('\n') ? "" : "\n"));
  }
}
