// `qkv data`: data the project generates itself. `qkv data dates` writes the date-normalisation
// pairs of the encoder-decoder example (configs/dates_encdec.toml).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "qkv/data/dates.h"
#include "qkv/data/split.h"
#include "qkv/error.h"
#include "qkv/io/durable_file.h"

namespace qkv::cli {

void add_data(CLI::App& app, std::function<int()>& run) {
  struct Args {
    int64_t train = 63000, val = 1000;
    uint64_t seed = 1;
    std::string out = "data/corpora";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("data", "Generate a data set");
  cmd->require_subcommand(1);
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
  dates->callback([&run, a] {
    run = [a]() -> int {
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
      std::printf(
          "wrote %s (%lld training pairs, then %lld held out) and %s; train on it with "
          "data.val_fraction = %.17g\n",
          all.c_str(), static_cast<long long>(a->train), static_cast<long long>(a->val),
          val.c_str(), fraction);
      return 0;
    };
  });
}

}  // namespace qkv::cli
