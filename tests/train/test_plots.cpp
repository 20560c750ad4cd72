// SVG output: loss charts and attention heatmaps are well-formed XML with the expected series
// and panels; the trainer keeps RUN/loss.svg current.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "plot/svg.h"
#include "qkv/error.h"
#include "qkv/inspect/attention_probe.h"
#include "qkv/io/config.h"
#include "qkv/nn/models.h"
#include "qkv/plot/loss_plot.h"
#include "qkv/train/task.h"
#include "qkv/train/trainer.h"
#include "support/corpus.h"
#include "support/temp_dir.h"
#include "support/xml_check.h"

using namespace qkv;
using namespace qkv::train;
using namespace qkv::inspect;
using namespace qkv::load;
using namespace qkv::plot;
using qkv::testing::check_xml;
using qkv::testing::read_file;
using qkv::testing::TempDir;

namespace {

LossCurves curves(std::string name, int n_train, int n_val) {
  LossCurves c{std::move(name), {}, {}};
  for (int i = 0; i < n_train; ++i) c.train.emplace_back(i, 4.0 / (1 + i));
  for (int i = 0; i < n_val; ++i) c.val.emplace_back(10 * i, 4.2 / (1 + 10 * i));
  return c;
}

}  // namespace

TEST_CASE("xml check: catches the mistakes it is for") {
  CHECK(check_xml("<a><b x=\"1\"/>t &amp; u</a>").ok());
  CHECK_FALSE(check_xml("<a><b></a></b>").ok());
  CHECK_FALSE(check_xml("<a x=1></a>").ok());
  CHECK_FALSE(check_xml("<a>AT&T</a>").ok());
  CHECK_FALSE(check_xml("<a x=\"<\"></a>").ok());
  CHECK_FALSE(check_xml("<a></a><b></b>").ok());
  CHECK_FALSE(check_xml("<a x=\"1\" x=\"2\"></a>").ok());
  CHECK_FALSE(check_xml("<a>").ok());
}

TEST_CASE("loss chart: one train and one val series per run, escaped names, a legend entry each") {
  const std::string svg = loss_chart_svg(
      {curves("run <a>", 50, 6), curves("b & c", 80, 9), curves("no evals yet", 5, 0)},
      "compare \"runs\"");
  const auto x = check_xml(svg);
  REQUIRE_MESSAGE(x.ok(), x.error);
  CHECK(x["svg"] == 1);
  CHECK(x["polyline.train"] == 3);
  CHECK(x["polyline.val"] == 2);
  CHECK(x["circle"] == 6 + 9 + 1);  // a dot per evaluation, and one in the legend's key
  CHECK(svg.find("run &lt;a&gt;") != std::string::npos);
  CHECK(svg.find("b &amp; c") != std::string::npos);
  CHECK(svg.find("compare &quot;runs&quot;") != std::string::npos);
  CHECK(x["text"] > 10);  // title, tick labels, axis labels, legend
}

TEST_CASE("loss chart: a log axis has a tick per power of ten and takes a loss of 0") {
  LossCurves c{"r", {{0, 4.0}, {1, 0.5}, {2, 0.0}, {3, 0.002}}, {{0, 4.1}, {3, 0.003}}};
  const std::string svg = loss_chart_svg({c}, "t", /*log_y=*/true);
  const auto x = check_xml(svg);
  REQUIRE_MESSAGE(x.ok(), x.error);
  CHECK(x["polyline.train"] == 1);
  for (const char* tick : {">0.01</text>", ">0.1</text>", ">1</text>"})
    CHECK(svg.find(tick) != std::string::npos);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);
}

TEST_CASE("loss chart: a single point and a flat curve still draw") {
  LossCurves one{"one", {{0, 2.0}}, {}};
  const auto x = check_xml(loss_chart_svg({one}, "t"));
  REQUIRE_MESSAGE(x.ok(), x.error);
  CHECK(x["polyline.train"] == 1);
}

TEST_CASE("loss curves: read from metrics.jsonl, skipping a line cut short") {
  TempDir dir("plot_metrics");
  dir.write("metrics.jsonl",
            "{\"iter\":0,\"loss\":4.0,\"lr\":0.001}\n"
            "{\"iter\":0,\"train_loss\":4.1,\"val_loss\":4.2}\n"
            "{\"iter\":1,\"loss\":3.5}\n"
            "{\"iter\":2,\"lo");
  const LossCurves c = read_loss_curves(dir.path().string(), "r");
  CHECK(c.train == std::vector<std::pair<double, double>>{{0, 4.0}, {1, 3.5}});
  CHECK(c.val == std::vector<std::pair<double, double>>{{0, 4.2}});
  CHECK_THROWS_WITH_AS(read_loss_curves((dir.path() / "nope").string(), "r"),
                       doctest::Contains("metrics.jsonl: cannot open: No such file or directory"),
                       Error);
  TempDir empty("plot_empty");
  empty.write("metrics.jsonl", "");
  CHECK_THROWS_WITH_AS(read_loss_curves(empty.path().string(), "r"),
                       doctest::Contains("holds no losses yet"), Error);
}

TEST_CASE("loss curves: against seconds of training, from metrics.jsonl or a CSV") {
  TempDir dir("plot_seconds");
  dir.write("metrics.jsonl",
            "{\"iter\":0,\"loss\":4.0,\"ms\":500}\n"
            "{\"iter\":1,\"loss\":3.5,\"ms\":250}\n"
            "{\"iter\":2,\"val_loss\":3.25}\n"
            "{\"iter\":2,\"loss\":3.0,\"ms\":250}\n");
  const LossCurves c = read_loss_curves(dir.path().string(), "r", XAxis::seconds);
  CHECK(c.train == std::vector<std::pair<double, double>>{{0.5, 4.0}, {0.75, 3.5}, {1.0, 3.0}});
  CHECK(c.val == std::vector<std::pair<double, double>>{{0.75, 3.25}});

  const std::string csv = dir.write("torch.csv", "seconds,val_loss\n0,4.2\n12.5,2.75\n");
  const LossCurves t = read_val_csv(csv, "torch", XAxis::seconds);
  CHECK(t.train.empty());
  CHECK(t.val == std::vector<std::pair<double, double>>{{0, 4.2}, {12.5, 2.75}});
  CHECK_THROWS_WITH_AS(read_val_csv(csv, "torch", XAxis::iteration),
                       doctest::Contains("torch.csv:1: the header is 'seconds,val_loss', this "
                                         "chart needs 'iter,val_loss'"),
                       Error);
  const std::string bad = dir.write("bad.csv", "seconds,val_loss\n1,2\n3;4\n");
  CHECK_THROWS_WITH_AS(read_val_csv(bad, "b", XAxis::seconds),
                       doctest::Contains("bad.csv:3: '3;4' is not two numbers"), Error);
  const std::string svg = loss_chart_svg({c, t}, "t", false, XAxis::seconds);
  check_xml(svg);
  CHECK(svg.find("seconds of training") != std::string::npos);
  CHECK(svg.find(">iteration<") == std::string::npos);
}

TEST_CASE("train: RUN/loss.svg is redrawn at each evaluation") {
  TempDir dir("plot_train");
  const std::string data = dir.write("corpus.txt", qkv::testing::generated_corpus(800));
  TrainOptions o;
  o.config_path = QKV_SOURCE_DIR "/configs/tiny.toml";
  o.overrides = {"data.path=" + data, "train.out_dir=" + (dir.path() / "run").string(),
                 "train.max_iters=20", "train.eval_interval=10", "schedule.lr_decay_iters=20"};
  Trainer(o, parallel::Distributed{}, read_environment()).run(std::atomic<bool>{false});
  const auto x = check_xml(read_file(dir.path() / "run" / "loss.svg"));
  REQUIRE_MESSAGE(x.ok(), x.error);
  CHECK(x["polyline.train"] == 1);
  CHECK(x["polyline.val"] == 1);
  CHECK(x["circle"] == 3 + 1);  // evaluations at 0, 10, 20
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "run"))
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("attention chart: a panel per (layer, head), labels escaped, bad weights rejected") {
  AttentionChart chart{"t", "s", {"<", "&", "\u2423"}, {"a", "b"}, {}, 2};
  for (int p = 0; p < 3; ++p) chart.panels.push_back({"p", {0.5f, 0.5f, 1, 0, 0, 1}});
  const std::string svg = attention_chart_svg(chart);
  const auto x = check_xml(svg);
  REQUIRE_MESSAGE(x.ok(), x.error);
  CHECK(x["g.panel"] == 3);
  CHECK(svg.find(">&lt;</text>") != std::string::npos);
  chart.panels[1].weights.pop_back();
  CHECK_THROWS_WITH_AS(attention_chart_svg(chart), doctest::Contains("has 5 weights for 3 x 2"),
                       Error);
  CHECK(display_char(U' ') == "\u2423");
  CHECK(display_char(U'\n') == "\u23ce");
  CHECK(display_char(U'q') == "q");
}

TEST_CASE("attention probe: panels for every layer and head of each model kind") {
  io::Config c = io::load_config(QKV_SOURCE_DIR "/configs/tiny.toml");  // 2 layers, 2 heads
  const data::Vocab vocab =
      data::Vocab::from_text("abc _\n1-", {data::kPad, data::kBos, data::kEos, data::kMask});
  SUBCASE("decoder: causal, characters on both axes") {
    nn::DecoderModel model(model_config(c, vocab.size()));
    const AttentionChart all = probe_attention(model, c, vocab, {.text = "ab c\n"});
    CHECK(all.panels.size() == 4);
    CHECK(all.row_labels == std::vector<std::string>{"a", "b", "\u2423", "c", "\u23ce"});
    CHECK(all.col_labels == all.row_labels);
    CHECK(all.panels[0].weights[1] == 0.0f);  // row 0 cannot see key 1
    const auto x = check_xml(attention_chart_svg(all));
    REQUIRE_MESSAGE(x.ok(), x.error);
    CHECK(x["g.panel"] == 4);
    const AttentionChart one =
        probe_attention(model, c, vocab, {.text = "ab c\n", .layer = 1, .head = 0});
    REQUIRE(one.panels.size() == 1);
    CHECK(one.panels[0].title == "layer 1 · head 0");
    CHECK(one.panels[0].weights == all.panels[2].weights);  // panels go layer by layer
    CHECK_THROWS_WITH_AS(probe_attention(model, c, vocab, {.text = "abz"}),
                         doctest::Contains("'z' (U+007A) at position 2"), Error);
    CHECK_THROWS_WITH_AS(probe_attention(model, c, vocab, {.text = "a", .layer = 2}),
                         "--layer 2: the model has 2 layers (0 to 1)", Error);
    CHECK_THROWS_WITH_AS(probe_attention(model, c, vocab, {.text = std::string(17, 'a')}),
                         doctest::Contains("--prompt has 17 characters; this model takes 1 to 16"),
                         Error);
  }
  SUBCASE("encoder: the mask character reads as <mask>") {
    c.model.kind = nn::ModelKind::encoder;
    nn::EncoderModel model(model_config(c, vocab.size()));
    const AttentionChart chart = probe_attention(model, c, vocab, {.text = "a_c", .head = 1});
    CHECK(chart.panels.size() == 2);           // one head of each layer
    CHECK(chart.panels[0].weights[2] > 0.0f);  // bidirectional: row 0 sees key 2
  }
  SUBCASE("encoder-decoder: cross-attention rows are the output characters") {
    c.model.kind = nn::ModelKind::encoder_decoder;
    nn::EncoderDecoderModel model(model_config(c, vocab.size()));
    CHECK_THROWS_WITH_AS(probe_attention(model, c, vocab, {.text = "1"}),
                         doctest::Contains("needs --target"), Error);
    AttentionRequest r{.text = "1-a", .target = "ab"};
    const AttentionChart cross = probe_attention(model, c, vocab, r);
    CHECK(cross.row_labels == std::vector<std::string>{"a", "b", "<eos>"});
    CHECK(cross.col_labels == std::vector<std::string>{"1", "-", "a"});
    CHECK(cross.panels.size() == 4);
    r.part = "decoder";
    CHECK(probe_attention(model, c, vocab, r).row_labels ==
          std::vector<std::string>{"<bos>", "a", "b"});
    r.part = "encoder";
    CHECK(probe_attention(model, c, vocab, r).row_labels.size() == 3);
    r.part = "both";
    CHECK_THROWS_AS(probe_attention(model, c, vocab, r), Error);
  }
}
