// The page in a real browser (headless Chromium) while a run trains: the chart gains points,
// a prompt's text streams in, and a screenshot of it all is written (the README's).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>

#include "chromium.h"
#include "generate/models.h"
#include "serve/serve_fixture.h"
#include "support/corpus.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

using namespace qkv;
using namespace qkv::testing;
namespace fs = std::filesystem;

namespace {

const std::string kQkv = QKV_BINARY_DIR "/qkv";

std::vector<std::string> train_args(const std::string& corpus, const fs::path& run,
                                    const std::vector<std::string>& settings) {
  std::vector<std::string> args{kQkv,
                                "train",
                                QKV_SOURCE_DIR "/configs/tiny.toml",
                                "--set",
                                "data.path=" + corpus,
                                "--out",
                                run.string(),
                                "--threads",
                                "1"};
  for (const std::string& s : settings) args.insert(args.end(), {"--set", s});
  return args;
}

}  // namespace

TEST_CASE("page: the chart grows while a run trains, a prompt streams, a screenshot is written") {
  TempDir dir("browser_page");
  const std::string corpus = dir.write("corpus.txt", generated_corpus(3000));
  const fs::path runs = dir.path() / "runs";
  // A finished run to try, and one that trains long enough to watch.
  REQUIRE(run_command(train_args(corpus, runs / "tiny", {"train.max_iters=300"})).exit_code == 0);
  Process live(train_args(corpus, runs / "live",
                          {"train.max_iters=100000", "train.eval_interval=50", "model.n_embd=64",
                           "model.n_layer=3", "model.block_size=32"}));

  const TestServer server(runs);
  const int port = server.port();

  Chromium browser(fmt::format("http://127.0.0.1:{}/#chart=live,tiny&try=tiny", port),
                   dir.path() / "profile");
  const std::string live_points = "(state.charted.get('live')?.train.length ?? 0)";
  REQUIRE(browser.wait_for(live_points + " > 0", 60));
  const int64_t before = browser.evaluate(live_points).get<int64_t>();
  CHECK(browser.wait_for(live_points + " > " + std::to_string(before + 20), 60));
  CHECK(browser.wait_for("document.querySelectorAll('#chart-svg polyline').length >= 3", 10));
  CHECK(browser.evaluate("document.querySelector('.run .dot') !== null") == true);
  // Hovering the chart shows the values under the pointer.
  browser.evaluate(
      "const box = document.getElementById('chart-svg').getBoundingClientRect();"
      "document.getElementById('chart-svg').dispatchEvent(new MouseEvent('mousemove', "
      "{clientX: box.left + box.width / 2, clientY: box.top + box.height / 2}))");
  CHECK(browser.evaluate("document.getElementById('tip').textContent.includes('live train: ')") ==
        true);

  browser.evaluate(
      "document.getElementById('prompt').value = 'the cat';"
      "document.getElementById('max_tokens').value = 80;"
      "document.getElementById('generate').click()");
  CHECK(browser.wait_for("document.getElementById('output').textContent.length >= 87", 30));
  CHECK(browser.evaluate("document.getElementById('output').textContent.startsWith('the cat')") ==
        true);
  CHECK(browser.evaluate("document.getElementById('try-error').textContent") == "");

  browser.evaluate(
      "document.getElementById('att-layer').value = 1;"
      "document.getElementById('att-go').click()");
  CHECK(browser.wait_for("document.querySelectorAll('#attention img').length == 1", 30));
  CHECK(browser.wait_for("document.querySelector('#attention img').complete", 10));
  CHECK(browser.evaluate("document.getElementById('att-error').textContent") == "");

  const std::string png = browser.screenshot();
  CHECK(png.substr(1, 3) == "PNG");
  const fs::path shot = fs::path(QKV_BINARY_DIR) / "serve-page.png";
  std::ofstream(shot, std::ios::binary).write(png.data(), std::streamsize(png.size()));
  MESSAGE("screenshot: " << shot.string());
  live.send(SIGINT);
  CHECK(live.wait().exit_code == 130);  // saved, then ended as by Ctrl-C
}

TEST_CASE("page: an encoder-decoder's beam, an encoder's fill, a damaged checkpoint's error; "
          "a first visit charts the runs with metrics") {
  TempDir dir("browser_kinds");
  const fs::path runs = dir.path() / "runs";
  const data::Vocab pairs = pair_vocab(), masked = mask_vocab(), text = text_vocab();
  const io::Config sc = tiny_config(nn::ModelKind::encoder_decoder);
  save_run(runs / "seq", sc, pairs, *make_model<nn::EncoderDecoderModel>(sc, pairs, 5));
  const io::Config ec = tiny_config(nn::ModelKind::encoder);
  save_run(runs / "enc", ec, masked, *make_model<nn::EncoderModel>(ec, masked, 7));
  const io::Config dc = tiny_config(nn::ModelKind::decoder);
  save_run(runs / "damaged", dc, text, *make_model<nn::DecoderModel>(dc, text, 3));
  {
    std::fstream model(runs / "damaged" / "checkpoint-0" / "model.safetensors",
                       std::ios::in | std::ios::out | std::ios::binary);
    model.seekp(-1, std::ios::end);
    model.put('\x7f');
  }
  std::ofstream(runs / "seq" / "metrics.jsonl") << "{\"iter\":0,\"loss\":3.5}\n";
  const TestServer server(runs);
  const int port = server.port();
  Chromium browser(fmt::format("http://127.0.0.1:{}/#try=seq", port), dir.path() / "profile");

  REQUIRE(browser.wait_for("document.getElementById('beam') !== null", 30));
  // No #chart= in the address: the run with metrics is charted; the attention form says "all".
  CHECK(browser.wait_for("[...state.charted.keys()].join() == 'seq'", 10));
  CHECK(browser.evaluate("document.getElementById('att-layer').placeholder + "
                         "document.getElementById('att-head').value") == "all");
  browser.evaluate(
      "document.getElementById('input').value = 'abcd';"
      "document.getElementById('beam').value = 3;"
      "document.getElementById('generate').click()");
  CHECK(browser.wait_for("document.querySelectorAll('#output tr').length == 4", 30));  // + header
  CHECK(browser.evaluate("document.getElementById('try-error').textContent") == "");

  browser.evaluate("selectRun('enc')");
  REQUIRE(browser.wait_for("document.getElementById('text') !== null", 10));
  browser.evaluate(
      "document.getElementById('text').value = 'the c_t';"
      "document.getElementById('generate').click()");
  CHECK(browser.wait_for("document.querySelectorAll('#output td').length == 5", 30));
  CHECK(browser.evaluate("document.querySelector('#output th').textContent") == "position 5");

  browser.evaluate("selectRun('damaged')");
  REQUIRE(browser.wait_for("document.getElementById('prompt') !== null", 10));
  browser.evaluate(
      "document.getElementById('prompt').value = 'the';"
      "document.getElementById('generate').click()");
  CHECK(browser.wait_for(
      "document.getElementById('try-error').textContent.includes('SHA-256 does not match')", 30));
}
