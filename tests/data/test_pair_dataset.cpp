#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "support/temp_dir.h"
#include "qkv/data/pair_dataset.h"
#include "qkv/error.h"

using namespace qkv;
using namespace qkv::data;

namespace {
// Reversal pairs; the 10 lines make a 9/1 split at the default val_fraction.
const char* kTsv =
    "ab\tba\n"
    "abc\tcba\n"
    "a\ta\n"
    "\n"  // blank lines are skipped
    "cab\tbac\r\n"
    "bb\tbb\n"
    "ca\tac\n"
    "abca\tacba\n"
    "c\tc\n"
    "ba\tab\n"
    "cc\tcc\n";

std::string row(const Vocab& v, const std::vector<int32_t>& ids, int64_t b, int64_t T) {
  std::vector<int32_t> r(ids.begin() + b * T, ids.begin() + (b + 1) * T);
  std::erase(r, -1);
  return v.decode(r);
}
}  // namespace

TEST_CASE("pair_dataset: vocab is every character plus <pad>, <bos>, <eos>; split from the end") {
  const PairDataset ds = PairDataset::from_tsv(kTsv);
  CHECK(ds.vocab().chars() == std::vector<char32_t>{U'a', U'b', U'c'});
  CHECK(ds.pad_id() == 3);
  CHECK(ds.bos_id() == 4);
  CHECK(ds.eos_id() == 5);
  CHECK(ds.size(Split::train) == 9);
  CHECK(ds.size(Split::val) == 1);
  auto it = ds.sequential(Split::val, 4);
  const auto val = it.next();
  REQUIRE(val.has_value());
  CHECK(row(ds.vocab(), val->src, 0, val->Ts) == "cc");  // the last line of the file
  CHECK_FALSE(it.next().has_value());
}

TEST_CASE("pair_dataset: a batch pads sources, and frames targets with <bos> and <eos>") {
  const PairDataset ds = PairDataset::from_tsv(kTsv, {.val_fraction = 0.0});
  auto it = ds.sequential(Split::train, 3);
  const PairBatch batch = *it.next();  // ab/ba, abc/cba, a/a
  CHECK(batch.B == 3);
  CHECK(batch.Ts == 3);  // longest source
  CHECK(batch.Tt == 4);  // longest target + 1
  const int32_t a = 0, b = 1, c = 2, pad = ds.pad_id(), bos = ds.bos_id(), eos = ds.eos_id();
  CHECK(batch.src == std::vector<int32_t>{a, b, pad, a, b, c, a, pad, pad});
  CHECK(batch.src_padding == std::vector<uint8_t>{0, 0, 1, 0, 0, 0, 0, 1, 1});
  CHECK(batch.tgt_in == std::vector<int32_t>{bos, b, a, pad, bos, c, b, a, bos, a, pad, pad});
  CHECK(batch.tgt_out == std::vector<int32_t>{b, a, eos, -1, c, b, a, eos, a, eos, -1, -1});
}

TEST_CASE("pair_dataset: sequential batches cover a split in file order, the last one short") {
  const PairDataset ds = PairDataset::from_tsv(kTsv);
  std::vector<std::string> sources;
  std::vector<int64_t> sizes;
  for (auto it = ds.sequential(Split::train, 4); auto batch = it.next();) {
    sizes.push_back(batch->B);
    for (int64_t b = 0; b < batch->B; ++b) {
      std::vector<int32_t> src(batch->src.begin() + b * batch->Ts,
                               batch->src.begin() + (b + 1) * batch->Ts);
      std::erase(src, ds.pad_id());
      sources.push_back(ds.vocab().decode(src));
    }
  }
  CHECK(sizes == std::vector<int64_t>{4, 4, 1});
  CHECK(sources ==
        std::vector<std::string>{"ab", "abc", "a", "cab", "bb", "ca", "abca", "c", "ba"});
}

TEST_CASE("pair_dataset: random batches draw examples of their split with the Rng") {
  const PairDataset ds = PairDataset::from_tsv(kTsv, {.val_fraction = 0.5});  // 5 and 5
  Rng rng(4), same(4);
  const PairBatch x = ds.get_batch(Split::val, 64, rng), y = ds.get_batch(Split::val, 64, same);
  CHECK(x.src == y.src);
  CHECK(x.tgt_out == y.tgt_out);
  std::set<std::string> seen;
  for (int64_t b = 0; b < x.B; ++b) {
    const std::string src = row(ds.vocab(), x.src, b, x.Ts),
                      tgt = row(ds.vocab(), x.tgt_out, b, x.Tt);
    std::string stripped = src.substr(0, src.find("<pad>"));
    seen.insert(stripped);
    // Each row is one example: the target is the reversed source, ended by <eos>.
    CHECK(tgt == std::string(stripped.rbegin(), stripped.rend()) + "<eos>");
  }
  CHECK(seen == std::set<std::string>{"ca", "abca", "c", "ba", "cc"});  // the last 5 lines
}

TEST_CASE("pair_dataset: bad lines are reported with file:line") {
  testing::TempDir dir("pairs_errors");
  const std::string no_tab = dir.write("no_tab.tsv", "ab\tba\n\nabc cba\n");
  CHECK_THROWS_WITH_AS(PairDataset::load(no_tab),
                       (no_tab + ":3: expected 'source<TAB>target', found no tab").c_str(), Error);
  CHECK_THROWS_WITH_AS(PairDataset::from_tsv("a\tb\tc\n", {}, "p.tsv"),
                       "p.tsv:1: expected 'source<TAB>target', found 2 tabs", Error);
  CHECK_THROWS_WITH_AS(PairDataset::from_tsv("a\tb\n\tc\n", {}, "p.tsv"),
                       "p.tsv:2: the source is empty", Error);
  CHECK_THROWS_WITH_AS(PairDataset::from_tsv("ab\tb\nabcde\tb\n", {.block_size = 4}, "p.tsv"),
                       "p.tsv:2: the source has 5 characters, more than block_size = 4", Error);
  CHECK_THROWS_WITH_AS(PairDataset::from_tsv("ab\tabcd\n", {.block_size = 4}, "p.tsv"),
                       "p.tsv:1: the target has 4 characters, more than block_size-1 = 3 (one "
                       "position goes to <bos>/<eos>)",
                       Error);
  CHECK_THROWS_WITH_AS(PairDataset::from_tsv("ab\tb\na\xFF\tb\n", {}, "p.tsv"),
                       doctest::Contains("p.tsv:2: invalid UTF-8 at byte 1"), Error);
  CHECK_THROWS_WITH_AS(PairDataset::from_tsv("\n\n", {}, "p.tsv"),
                       "p.tsv: no examples (expected 'source<TAB>target' lines)", Error);
  const std::string missing = (dir.path() / "none.tsv").string();
  CHECK_THROWS_WITH_AS(PairDataset::load(missing),
                       doctest::Contains(("data.path '" + missing + "' does not exist").c_str()),
                       Error);
}

TEST_CASE("pair_dataset: a given vocab must have the pair specials and every character") {
  CHECK_THROWS_WITH_AS(
      PairDataset::from_tsv("ab\tba\n", {.vocab = Vocab::from_text("ab", {kMask})}, "p.tsv"),
      "p.tsv: pair data needs a vocabulary with <pad>, <bos> and <eos>; the given one has "
      "specials [<mask>]",
      Error);
  const Vocab v = Vocab::from_text("ab", {kPad, kBos, kEos});
  CHECK_THROWS_WITH_AS(PairDataset::from_tsv("ab\tba\nab\tbz\n", {.vocab = v}, "p.tsv"),
                       "p.tsv:2: target: character 'z' (U+007A) at position 1 is not in the "
                       "vocabulary (5 symbols)",
                       Error);
  CHECK(PairDataset::from_tsv("ab\tba\n", {.vocab = v}).vocab().is_compatible(v));
}

TEST_CASE("pair_dataset: an empty split cannot give a random batch") {
  const PairDataset ds = PairDataset::from_tsv("ab\tba\nb\tb\n", {.val_fraction = 0.0});
  Rng rng(0);
  CHECK_THROWS_WITH_AS(ds.get_batch(Split::val, 2, rng),
                       "val split has no examples; raise data.val_fraction", Error);
  CHECK_FALSE(ds.sequential(Split::val, 2).next().has_value());
}
