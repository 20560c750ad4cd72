// The [optim] and [schedule] keys of the modern recipe (issue 23): read, and refused with one
// line naming the key.
#include <doctest/doctest.h>

#include <string>

#include "qkv/error.h"
#include "qkv/io/config.h"

using namespace qkv;
using namespace qkv::io;

namespace {
Config parse(const std::string& tables) {
  return parse_config("[data]\npath = 'a'\n" + tables, "c.toml");
}
}  // namespace

TEST_CASE("config: schedule.decay = wsd and its decay_fraction are read") {
  const Config c = parse("[schedule]\ndecay = 'wsd'\ndecay_fraction = 0.5\n");
  CHECK(c.schedule.decay == optim::Decay::wsd);
  CHECK(c.schedule.decay_fraction == 0.5);
  CHECK(parse("").schedule.decay_fraction == 0.2);
  CHECK(parse("[schedule]\ndecay_fraction = 1\n").schedule.decay_fraction == 1.0);
}

TEST_CASE("config: decay_fraction outside (0, 1] is one line naming the key") {
  CHECK_THROWS_WITH_AS(parse("[schedule]\ndecay_fraction = 0\n"),
                       "c.toml:4: schedule.decay_fraction = 0 is out of range (0, 1]", Error);
  CHECK_THROWS_WITH_AS(parse("[schedule]\ndecay_fraction = 1.5\n"),
                       "c.toml:4: schedule.decay_fraction = 1.5 is out of range (0, 1]", Error);
  CHECK_THROWS_WITH_AS(
      parse_config("[data]\npath = 'a'\n", "c.toml", {"schedule.decay_fraction=-1"}),
      "--set schedule.decay_fraction=-1: schedule.decay_fraction = -1 is out of range (0, 1]",
      Error);
}

TEST_CASE("config: wsd, like cosine, needs lr_decay_iters at or after the end of warmup") {
  CHECK_THROWS_WITH_AS(
      parse("[schedule]\ndecay = 'wsd'\nwarmup_iters = 10\nlr_decay_iters = 5\n"),
      "c.toml:6: schedule.lr_decay_iters = 5 is before the end of warmup (10)", Error);
  CHECK(parse("[schedule]\ndecay = 'constant'\nwarmup_iters = 10\nlr_decay_iters = 5\n")
            .schedule.decay == optim::Decay::constant);
}

TEST_CASE("config: optim.kind, muon_lr and muon_momentum are read; adamw is the default") {
  const Config d = parse("");
  CHECK(d.optim.kind == optim::OptimizerKind::adamw);
  CHECK(d.optim.muon_lr == 0.02);
  CHECK(d.optim.muon_momentum == 0.95);
  const Config c = parse("[optim]\nkind = 'muon'\nmuon_lr = 0.05\nmuon_momentum = 0.9\n");
  CHECK(c.optim.kind == optim::OptimizerKind::muon);
  CHECK(c.optim.muon_lr == 0.05);
  CHECK(c.optim.muon_momentum == 0.9);
}

TEST_CASE("config: a bad optim.kind, muon_lr or muon_momentum is one line naming the key") {
  CHECK_THROWS_WITH_AS(parse("[optim]\nkind = 'sgd'\n"),
                       "c.toml:4: optim.kind = 'sgd' is not one of: adamw, muon", Error);
  CHECK_THROWS_WITH_AS(parse("[optim]\nmuon_lr = 0\n"),
                       "c.toml:4: optim.muon_lr = 0 is out of range (0, inf]", Error);
  CHECK_THROWS_WITH_AS(parse("[optim]\nmuon_lr = -0.02\n"),
                       "c.toml:4: optim.muon_lr = -0.02 is out of range (0, inf]", Error);
  CHECK_THROWS_WITH_AS(parse_config("[data]\npath = 'a'\n", "c.toml", {"optim.muon_lr=0"}),
                       "--set optim.muon_lr=0: optim.muon_lr = 0 is out of range (0, inf]", Error);
  CHECK_THROWS_WITH_AS(parse("[optim]\nmuon_momentum = 1\n"),
                       "c.toml:4: optim.muon_momentum = 1 is out of range [0, 1)", Error);
}
