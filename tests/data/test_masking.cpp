#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "qkv/data/masking.h"
#include "qkv/error.h"

using namespace qkv;
using namespace qkv::data;

namespace {
std::string alphabet_text(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += char('a' + (i * 7 + i / 26) % 26);
  return s;
}
}  // namespace

TEST_CASE("masking: selection and replacement rates match 15% and 80/10/10 on a large sample") {
  const TextDataset ds = TextDataset::from_text(alphabet_text(20000), {.specials = {kMask}});
  const int32_t mask = ds.vocab().special_id(kMask);
  Rng rng(42);
  // 64 x 128 x 8 = 65536 positions: the binomial standard error of 15% is 0.14 points.
  int64_t total = 0, selected = 0, masked = 0, kept = 0, changed = 0;
  for (int rep = 0; rep < 8; ++rep) {
    const Batch batch = get_masked_batch(ds, Split::train, 64, 128, rng);
    for (size_t i = 0; i < batch.inputs.size(); ++i) {
      ++total;
      if (batch.targets[i] < 0) continue;
      ++selected;
      if (batch.inputs[i] == mask) {
        ++masked;
      } else if (batch.inputs[i] == batch.targets[i]) {
        ++kept;
      } else {
        ++changed;
        CHECK(batch.inputs[i] < ds.vocab().num_chars());  // random characters are never special
      }
    }
  }
  CHECK(double(selected) / total == doctest::Approx(0.15).epsilon(0.05));
  CHECK(double(masked) / selected == doctest::Approx(0.8).epsilon(0.03));
  // A random replacement hits the original character 1 time in 26, which then counts as kept.
  CHECK(double(changed) / selected == doctest::Approx(0.1 * 25 / 26).epsilon(0.1));
  CHECK(double(kept) / selected == doctest::Approx(0.1 + 0.1 / 26).epsilon(0.1));
}

TEST_CASE("masking: targets are the original ids exactly at selected positions, -1 elsewhere") {
  std::vector<int32_t> original(1000 * 16);  // about 240 random replacements
  for (size_t i = 0; i < original.size(); ++i) original[i] = int32_t(i % 20);
  std::vector<int32_t> inputs = original, targets(original.size(), 7);
  Rng rng(9);
  const int32_t mask = 99, n_chars = 20;  // ids 20..98 would be specials: never drawn
  mask_rows(inputs, targets, 16, mask, n_chars, rng);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (targets[i] == -1) {
      CHECK(inputs[i] == original[i]);  // unselected positions are untouched
    } else {
      CHECK(targets[i] == original[i]);
      CHECK((inputs[i] == mask || (inputs[i] >= 0 && inputs[i] < n_chars)));
    }
  }
}

TEST_CASE("masking: every row has at least one position to predict") {
  // With select_prob tiny almost no row selects anything by chance.
  std::vector<int32_t> inputs(50 * 4, 3), targets(inputs.size());
  Rng rng(1);
  mask_rows(inputs, targets, 4, 9, 8, rng, {.select_prob = 1e-6});
  for (int64_t r = 0; r < 50; ++r) {
    int selected = 0;
    for (int64_t t = 0; t < 4; ++t) selected += targets[size_t(r * 4 + t)] >= 0;
    CHECK(selected == 1);
  }
}

TEST_CASE("masking: the same Rng state gives the same batch") {
  const TextDataset ds = TextDataset::from_text(alphabet_text(2000), {.specials = {kMask}});
  Rng a(17), b(17);
  const Batch x = get_masked_batch(ds, Split::train, 8, 32, a);
  const Batch y = get_masked_batch(ds, Split::train, 8, 32, b);
  CHECK(x.inputs == y.inputs);
  CHECK(x.targets == y.targets);
  CHECK(x.B == 8);
  CHECK(x.T == 32);
}

TEST_CASE("masking: a vocab without <mask>, a short split and bad options are errors") {
  const TextDataset plain = TextDataset::from_text(alphabet_text(100));
  Rng rng(0);
  CHECK_THROWS_WITH_AS(get_masked_batch(plain, Split::train, 2, 8, rng),
                       doctest::Contains("masked-character data needs '<mask>'"), Error);
  const TextDataset ds = TextDataset::from_text(alphabet_text(100), {.specials = {kMask}});
  CHECK_THROWS_WITH_AS(get_masked_batch(ds, Split::val, 2, 11, rng),
                       "val split has 10 characters, needs at least block_size = 11; raise "
                       "data.val_fraction or lower block_size",
                       Error);
  CHECK(get_masked_batch(ds, Split::val, 2, 10, rng).inputs.size() == 20);  // exactly fits
  CHECK_THROWS_WITH_AS(get_masked_batch(ds, Split::train, 2, 8, rng, {.select_prob = 0}),
                       "masking: select_prob = 0 is outside (0, 1]", Error);
  CHECK_THROWS_WITH_AS(
      get_masked_batch(ds, Split::train, 2, 8, rng, {.mask_prob = 0.9, .random_prob = 0.2}),
      "masking: mask_prob = 0.9 and random_prob = 0.2 must be >= 0 with a sum <= 1", Error);
}
