// `qkv data`: `qkv data prepare` turns text into a prepared corpus that training reads in place;
// `qkv data dates` writes the date-normalisation pairs of the encoder-decoder example
// (configs/dates_encdec.toml).
#include <filesystem>
#include <memory>

#include "commands.h"
#include "qkv/data/dates.h"
#include "qkv/data/prepare.h"
#include "qkv/data/split.h"
#include "qkv/error.h"
#include "qkv/io/durable_file.h"
#include "qkv/train/task.h"

namespace qkv::cli {

namespace {

void add_prepare(CLI::App& data, std::function<int()>& run) {
  struct Args {
    std::vector<std::string> inputs;
    std::string out, jsonl_field = "text";
    bool pairs = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = data.add_subcommand(
      "prepare",
      "Prepare text once for training: its vocabulary and its characters' ids, which `qkv train` "
      "then reads in place, whatever the corpus's size (set data.path to OUT). "
      "Given raw text instead, qkv train prepares it itself into a cache (data.cache_dir)");
  cmd->add_option("inputs", a->inputs,
                  "Text files (UTF-8; .zst compressed; .jsonl JSON lines), directories (every "
                  "file in them, recursively, in sorted order) or quoted glob patterns, in order")
      ->required()
      ->type_name("INPUT...");
  cmd->add_option("--out", a->out, "The directory to write the prepared corpus to")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--jsonl-field", a->jsonl_field, "The text field of .jsonl records")
      ->capture_default_str();
  cmd->add_flag("--pairs", a->pairs,
                "One TSV of source<TAB>target lines, for model.kind = encoder_decoder");
  on_run(*cmd, run, [a]() -> int {
    const data::PrepareOptions options{
        .jsonl_field = a->jsonl_field, .what = "input", .progress = train::log_prepare_progress};
    const std::vector<std::string> files = data::expand_inputs(a->inputs, "input");
    QKV_CHECK(!a->pairs || files.size() == 1, "--pairs takes one TSV file, got {} files",
              files.size());
    const data::Corpus c = a->pairs ? data::prepare_pairs(files[0], a->out, options)
                                    : data::prepare_text(files, a->out, options);
    fmt::print("wrote {}: {} characters from {} file{}, {} symbols, {} byte{} per id{}\n", a->out,
               c.size(), files.size(), files.size() == 1 ? "" : "s", c.chars().size(), c.id_width(),
               c.id_width() == 1 ? "" : "s",
               a->pairs ? fmt::format(", {} pairs", c.pairs()) : std::string());
    return 0;
  });
}

}  // namespace

void add_data(CLI::App& app, std::function<int()>& run) {
  struct Args {
    int64_t train = 63000, val = 1000;
    uint64_t seed = 1;
    std::string out = "data/corpora";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("data", "Prepare a corpus, or generate a data set");
  cmd->require_subcommand(1);
  add_prepare(*cmd, run);
  CLI::App* dates = cmd->add_subcommand(
      "dates",
      "Date normalisation pairs (\"3rd of March, 1999\" -> \"1999-03-03\"): DIR/dates.tsv holds "
      "the training pairs then the held-out ones, DIR/dates_val.tsv the held-out ones alone");
  dates->add_option("--train", a->train, "Training pairs")
      ->capture_default_str()
      ->check(at_least(1));
  dates->add_option("--val", a->val, "Held-out pairs (their dates never occur in training)")
      ->capture_default_str()
      ->check(at_least(1));
  dates->add_option("--seed", a->seed, "Random seed")->capture_default_str()->check(at_least(0));
  dates->add_option("--out", a->out, "Directory to write to")->capture_default_str();
  on_run(*dates, run, [a]() -> int {
    const data::DateSplits d = data::generate_dates(a->train, a->val, a->seed);
    std::error_code ec;
    std::filesystem::create_directories(a->out, ec);
    QKV_CHECK(!ec, "--out {}: cannot create the directory: {}", a->out, ec.message());
    const std::string all = a->out + "/dates.tsv", val = a->out + "/dates_val.tsv";
    io::replace_file(all, data::dates_tsv(d.train) + data::dates_tsv(d.val));
    io::replace_file(val, data::dates_tsv(d.val));
    // The pair dataset keeps floor(n * (1 - val_fraction)) lines for training; half a line
    // less than the exact fraction makes that exactly n_train whatever the rounding.
    const int64_t n = a->train + a->val;
    double fraction = double(a->val) / double(n);
    if (data::train_size(n, fraction) != a->train) fraction = (double(a->val) - 0.5) / double(n);
    fmt::print(
        "wrote {} ({} training pairs, then {} held out) and {}; train on it with "
        "data.val_fraction = {:.17g}\n",
        all, a->train, a->val, val, fraction);
    return 0;
  });
}

}  // namespace qkv::cli
