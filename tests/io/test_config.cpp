#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "qkv/error.h"
#include "qkv/io/config.h"

using namespace qkv;
using namespace qkv::io;

namespace {
const char* kBase = R"(# a comment
[data]
path = "corpus.txt"

[model]
n_layer = 2
n_head = 2
n_embd = 32
dropout = 0.1

[optim]
lr = 3e-4
)";
}  // namespace

TEST_CASE("config: keys are read and the rest keep their defaults") {
  const Config c = parse_config(kBase, "x.toml");
  CHECK(c.data.path == std::vector<std::string>{"corpus.txt"});
  CHECK(c.model.n_layer == 2);
  CHECK(c.model.dropout == doctest::Approx(0.1));
  CHECK(c.optim.lr == doctest::Approx(3e-4));
  CHECK(c.train.batch_size == 12);
  CHECK(c.model.kind == nn::ModelKind::decoder);
}

TEST_CASE("config: an unknown key names file, line and the near miss") {
  CHECK_THROWS_WITH_AS(parse_config(std::string(kBase) + "[model]\n", "x.toml"),
                       doctest::Contains("x.toml:"), Error);  // a table defined twice
  const std::string text = "[data]\npath = \"a\"\n[model]\nn_heads = 4\n";
  CHECK_THROWS_WITH_AS(parse_config(text, "cfg.toml"),
                       "cfg.toml:4: unknown key 'model.n_heads' (did you mean 'model.n_head'?)",
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("[modle]\nn_layer = 1\n", "c.toml"),
                       "c.toml:2: unknown key 'modle.n_layer' (did you mean 'model.n_layer'?)",
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("lr = 1\n", "c.toml"),
                       doctest::Contains("c.toml:1: key 'lr' is outside any section"), Error);
}

TEST_CASE("config: a wrong type or an out-of-range value is one line with the key") {
  CHECK_THROWS_WITH_AS(parse_config("[data]\npath='a'\n[model]\nn_layer = \"four\"\n", "c.toml"),
                       "c.toml:4: expected an integer for 'model.n_layer', got 'four'", Error);
  CHECK_THROWS_WITH_AS(parse_config("[data]\npath='a'\n[model]\ndropout = 1.5\n", "c.toml"),
                       "c.toml:4: model.dropout = 1.5 is out of range [0, 1)", Error);
  CHECK_THROWS_WITH_AS(parse_config("[data]\npath='a'\n[model]\nkind = \"gpt\"\n", "c.toml"),
                       "c.toml:4: model.kind = 'gpt' is not one of: decoder, encoder, "
                       "encoder_decoder",
                       Error);
  CHECK_THROWS_WITH_AS(
      parse_config("[data]\npath='a'\n[model]\nactivation = \"swiglue\"\n", "c.toml"),
      "c.toml:4: model.activation = 'swiglue' is not one of: gelu, relu2, swiglu (did you mean "
      "'swiglu'?)",
      Error);
  CHECK_THROWS_WITH_AS(parse_config("[data]\npath='a'\n[model]\nrope_base = 1\n", "c.toml"),
                       "c.toml:4: model.rope_base = 1 is out of range (1, inf]", Error);
  CHECK_THROWS_WITH_AS(
      parse_config("[data]\npath='a'\n[model]\npos_encoding = \"rope\"\nn_embd = 6\nn_head = 2\n",
                   "c.toml"),
      doctest::Contains("c.toml:4: model.pos_encoding = \"rope\" turns channel pairs of each "
                        "head, so the head size must be even; model.n_embd / model.n_head = 3"),
      Error);
  CHECK_THROWS_WITH_AS(parse_config("[data]\npath='a'\n[train]\nbatch_size = 0\n", "c.toml"),
                       doctest::Contains("train.batch_size = 0 is out of range [1, inf]"), Error);
}

TEST_CASE("config: a float is checked as the float32 training computes in") {
  auto error_of = [](const std::string& setting) {
    try {
      parse_config(kBase, "c.toml", {setting});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("optim.eps=1e300") ==
        "--set optim.eps=1e300: optim.eps = 1e+300 is not a finite float32 number (at most "
        "3.40282e+38 in magnitude)");
  CHECK(error_of("optim.lr=inf").starts_with("--set optim.lr=inf: optim.lr = inf is not a finite"));
  CHECK(error_of("optim.lr=nan").starts_with("--set optim.lr=nan: optim.lr = nan is not a finite"));
  CHECK(error_of("optim.beta2=0.9999999999") ==
        "--set optim.beta2=0.9999999999: optim.beta2 = 0.9999999999 is 1 in float32, which "
        "training computes in; out of range [0, 1)");
  CHECK(error_of("optim.eps=1e-50") ==
        "--set optim.eps=1e-50: optim.eps = 1e-50 is 0 in float32, which training computes in; "
        "out of range (0, inf]");
  CHECK(error_of("optim.beta2=0.999") == "");
  CHECK(error_of("optim.lr=1e30").starts_with("--set optim.lr=1e30: optim.weight_decay = 0.1"));
}

TEST_CASE("config: decoupled weight decay keeps every weight's sign") {
  auto error_of = [](const std::vector<std::string>& settings) {
    try {
      parse_config(kBase, "c.toml", settings);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of({"optim.lr=1e30", "optim.weight_decay=0"}) == "");
  CHECK(error_of({"optim.lr=1", "optim.weight_decay=0.999"}) == "");
  CHECK(error_of({"optim.lr=1", "optim.weight_decay=1"}) ==
        "--set optim.weight_decay=1: optim.weight_decay = 1 with optim.lr = 1 would scale every "
        "weight by 0 each step; it must keep lr·weight_decay below 1");
}

TEST_CASE("config: data.mask_char is one character, counted in UTF-8") {
  CHECK_NOTHROW(parse_config(kBase, "c.toml", {"data.mask_char=é"}));
  CHECK_THROWS_WITH_AS(parse_config(kBase, "c.toml", {"data.mask_char=éé"}),
                       "--set data.mask_char=éé: data.mask_char must be a single character, got "
                       "'éé' (2 characters)",
                       Error);
  CHECK_THROWS_WITH_AS(parse_config(kBase, "c.toml", {"data.mask_char="}),
                       doctest::Contains("data.mask_char must be a single character, got '' (empty)"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_config(kBase, "c.toml", {"data.mask_char=\xC3"}),
                       doctest::Contains("--set data.mask_char=\xC3: "), Error);
}

TEST_CASE("config: TOML syntax errors carry the line") {
  CHECK_THROWS_WITH_AS(parse_config("[data]\npath = \n", "bad.toml"), doctest::Contains("bad.toml:2:"),
                       Error);
}

TEST_CASE("config: inconsistent values name the key that was set") {
  CHECK_THROWS_WITH_AS(parse_config("[data]\npath='a'\n[model]\nn_embd = 130\nn_head = 6\n", "c.toml"),
                       "c.toml:5: model.n_embd = 130 is not divisible by model.n_head = 6", Error);
  CHECK_THROWS_WITH_AS(parse_config("[model]\nn_layer = 1\n", "c.toml"),
                       doctest::Contains("data.path is not set"), Error);
}

TEST_CASE("config: --set overrides any key with the same validation") {
  const Config c = parse_config(kBase, "x.toml",
                                {"model.n_layer=6", "data.path=../other.txt", "model.kind=encoder",
                                 "model.bias=true", "optim.lr=0.01", "train.out_dir=runs/x"});
  CHECK(c.model.n_layer == 6);
  CHECK(c.data.path == std::vector<std::string>{"../other.txt"});
  CHECK(c.model.kind == nn::ModelKind::encoder);
  CHECK(c.model.bias);
  CHECK(c.optim.lr == doctest::Approx(0.01));
  CHECK(c.train.out_dir == "runs/x");
  CHECK_THROWS_WITH_AS(parse_config(kBase, "x.toml", {"optim.lr=fast"}),
                       "--set optim.lr=fast: expected a number for 'optim.lr', got 'fast'", Error);
  CHECK_THROWS_WITH_AS(parse_config(kBase, "x.toml", {"model.n_heads=3"}),
                       "--set model.n_heads=3: unknown key 'model.n_heads' (did you mean "
                       "'model.n_head'?)",
                       Error);
  CHECK_THROWS_WITH_AS(parse_config(kBase, "x.toml", {"model.n_head"}),
                       doctest::Contains("expected section.key=value"), Error);
  CHECK_THROWS_WITH_AS(parse_config(kBase, "x.toml", {"model.n_head=3"}),
                       "--set model.n_head=3: model.n_embd = 32 is not divisible by model.n_head = 3",
                       Error);
}

TEST_CASE("config: the resolved TOML reads back to the same config") {
  const Config c = parse_config(kBase, "x.toml", {"optim.lr=0.000123456789", "model.norm=post"});
  const std::string text = to_toml(c);
  const Config d = parse_config(text, "resolved.toml");
  CHECK(to_toml(d) == text);
  CHECK(d.optim.lr == c.optim.lr);
  CHECK(d.model.norm == nn::Norm::post);
  CHECK(text.find("[schedule]") != std::string::npos);
}

TEST_CASE("config: a missing file is one clear error") {
  CHECK_THROWS_WITH_AS(
      load_config("/nonexistent/qkv.toml"),
      "config file /nonexistent/qkv.toml: cannot open: No such file or directory", Error);
}

TEST_CASE("config: docs/config.md has every key's row as config_keys() gives it") {
  std::ifstream in(QKV_SOURCE_DIR "/docs/config.md");
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  // Markdown escapes the '|' of an enum's "pre \| post"; config_keys() does not.
  for (size_t i; (i = doc.find("\\|")) != std::string::npos;) doc.erase(i, 1);
  for (const KeyDoc& k : config_keys()) {
    const std::string row =
        fmt::format("| `{}` | {} | {} | {} |", k.key.substr(k.key.find('.') + 1), k.type,
                    k.default_value, k.meaning);
    CHECK_MESSAGE(doc.find(row) != std::string::npos, "docs/config.md lacks the row " << row);
  }
}

TEST_CASE("config: every config the project ships loads, and says what it trains") {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(QKV_SOURCE_DIR "/configs")) {
    if (e.path().extension() != ".toml") continue;
    CAPTURE(e.path().string());
    std::ifstream in(e.path());
    std::string first;
    std::getline(in, first);
    CHECK(first.starts_with("# "));  // the header comment: what the config is and how to run it
    CHECK_NOTHROW(load_config(e.path().string()));
    ++n;
  }
  CHECK(n >= 7);
}
