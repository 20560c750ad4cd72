#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "support/temp_dir.h"
#include "qkv/data/sha256.h"
#include "qkv/data/text_dataset.h"
#include "qkv/error.h"

using namespace qkv;
using namespace qkv::data;

namespace {
// 1000 characters with no period shorter than the alphabet, so a window's content pins down
// where it came from.
std::string sample_text() {
  std::string s;
  for (int i = 0; i < 1000; ++i) s += char('a' + (i * 7 + i / 26) % 26);
  return s;
}
}  // namespace

TEST_CASE("text_dataset: files are concatenated in order and split 90/10 like nanoGPT") {
  testing::TempDir dir("text_split");
  const std::string a = dir.write("a.txt", "hello\n"), b = dir.write("b.txt", "world, é!\n");
  const TextDataset ds = TextDataset::load({a, b}, {.val_fraction = 0.25});
  // 16 characters (é is one): train is int(16 * 0.75) = 12, val the last 4.
  CHECK(ds.size(Split::train) == 12);
  CHECK(ds.size(Split::val) == 4);
  CHECK(ds.vocab().decode(ds.ids(Split::train)) == "hello\nworld,");
  CHECK(ds.vocab().decode(ds.ids(Split::val)) == " é!\n");
  CHECK(ds.fingerprint() == sha256_hex("hello\nworld, é!\n"));
}

TEST_CASE("text_dataset: the default val_fraction of 0.1 takes int(n * 0.9) for training") {
  const TextDataset ds = TextDataset::from_text(sample_text());
  CHECK(ds.size(Split::train) == 900);
  CHECK(ds.size(Split::val) == 100);
  CHECK(ds.vocab().num_chars() == 26);
}

TEST_CASE("text_dataset: targets are the inputs shifted by one, windows stay in their split") {
  const std::string text = sample_text();
  const TextDataset ds = TextDataset::from_text(text);
  Rng rng(3);
  for (const Split split : {Split::train, Split::val}) {
    const std::vector<int32_t> data = ds.ids(split);
    const Batch batch = ds.get_batch(split, 16, 8, rng);
    REQUIRE(batch.inputs.size() == 16 * 8);
    REQUIRE(batch.targets.size() == 16 * 8);
    CHECK(batch.B == 16);
    CHECK(batch.T == 8);
    for (int64_t b = 0; b < 16; ++b) {
      const auto row = std::span(batch.inputs).subspan(size_t(b * 8), 8);
      const auto next = std::span(batch.targets).subspan(size_t(b * 8), 8);
      // The row must occur in this split, with its targets right after it.
      bool found = false;
      for (size_t s = 0; s + 9 <= data.size() && !found; ++s) {
        found = std::equal(row.begin(), row.end(), data.begin() + s) &&
                std::equal(next.begin(), next.end(), data.begin() + s + 1);
      }
      CHECK(found);
    }
  }
}

TEST_CASE("text_dataset: batches follow nanoGPT's draw order from the Rng") {
  const TextDataset ds = TextDataset::from_text(sample_text());
  Rng rng(11), replay(11);
  const Batch batch = ds.get_batch(Split::train, 4, 5, rng);
  const std::vector<int32_t> train = ds.ids(Split::train);
  for (int64_t b = 0; b < 4; ++b) {
    const auto start = int64_t(replay.below(900 - 5));  // all B starts are drawn first
    for (int64_t t = 0; t < 5; ++t) {
      CHECK(batch.inputs[size_t(b * 5 + t)] == train[size_t(start + t)]);
      CHECK(batch.targets[size_t(b * 5 + t)] == train[size_t(start + t + 1)]);
    }
  }
  CHECK(rng.state().state == replay.state().state);
}

TEST_CASE("text_dataset: the same seed gives the same batch, a different seed another") {
  const TextDataset ds = TextDataset::from_text(sample_text());
  Rng a(5), b(5), c(6);
  const Batch x = ds.get_batch(Split::train, 8, 16, a), y = ds.get_batch(Split::train, 8, 16, b);
  CHECK(x.inputs == y.inputs);
  CHECK(x.targets == y.targets);
  CHECK(ds.get_batch(Split::train, 8, 16, c).inputs != x.inputs);
}

TEST_CASE("text_dataset: a window fits exactly when the split has block_size+1 characters") {
  const TextDataset ds = TextDataset::from_text("abcdefghij", {.val_fraction = 0.0});
  Rng rng(1);
  const Batch batch = ds.get_batch(Split::train, 2, 9, rng);
  CHECK(ds.vocab().decode(std::span(batch.inputs).first(9)) == "abcdefghi");
  CHECK(ds.vocab().decode(std::span(batch.targets).first(9)) == "bcdefghij");
}

TEST_CASE("text_dataset: a split shorter than block_size+1 is a clear error") {
  // 500 characters: val is the last 50.
  const TextDataset ds = TextDataset::from_text(sample_text().substr(0, 500));
  Rng rng(0);
  CHECK_THROWS_WITH_AS(ds.get_batch(Split::val, 4, 64, rng),
                       "val split has 50 characters, needs at least block_size+1 = 65; raise "
                       "data.val_fraction or lower block_size",
                       Error);
  CHECK_THROWS_WITH_AS(ds.get_batch(Split::train, 4, 450, rng),
                       "train split has 450 characters, needs at least block_size+1 = 451; use a "
                       "longer corpus, or lower data.val_fraction or block_size",
                       Error);
  CHECK_THROWS_WITH_AS(ds.get_batch(Split::train, 0, 8, rng),
                       "get_batch: batch_size = 0 and block_size = 8 must be positive", Error);
}

TEST_CASE("text_dataset: a missing file, an empty corpus and a bad val_fraction are errors") {
  testing::TempDir dir("text_errors");
  const std::string missing = (dir.path() / "nope.txt").string();
  CHECK_THROWS_WITH_AS(TextDataset::load({missing}),
                       doctest::Contains(("data.path '" + missing + "' does not exist").c_str()),
                       Error);
  CHECK_THROWS_WITH_AS(TextDataset::load({dir.path().string()}),
                       doctest::Contains("is a directory"), Error);
  const std::string empty = dir.write("empty.txt", "");
  CHECK_THROWS_WITH_AS(TextDataset::load({empty}),
                       ("data.path '" + empty + "': the corpus is empty").c_str(), Error);
  CHECK_THROWS_WITH_AS(TextDataset::from_text("abc", {.val_fraction = 1.0}),
                       "data.val_fraction = 1 is outside [0, 1)", Error);
}

TEST_CASE("text_dataset: invalid UTF-8 and unknown characters name the file") {
  testing::TempDir dir("text_utf8");
  const std::string good = dir.write("good.txt", "abc\n");
  const std::string bad = dir.write("bad.txt", "ab\xE9 cd");  // Latin-1 é
  CHECK_THROWS_WITH_AS(
      TextDataset::load({good, bad}),
      doctest::Contains(("data.path '" + bad + "': invalid UTF-8 at byte 2").c_str()), Error);
  // With a checkpoint's vocab, new characters cannot be encoded.
  const std::string other = dir.write("other.txt", "abz");
  CHECK_THROWS_WITH_AS(
      TextDataset::load({good, other}, {.vocab = Vocab::from_text("abc\n")}),
      ("data.path '" + other +
       "': character 'z' (U+007A) at position 2 is not in the vocabulary (4 symbols)")
          .c_str(),
      Error);
}

TEST_CASE("text_dataset: a given vocab is used as is, and specials extend a built one") {
  const Vocab v = Vocab::from_text("abcdefghijklmnopqrstuvwxyz!", {kMask});
  const TextDataset given = TextDataset::from_text(sample_text(), {.vocab = v});
  CHECK(given.vocab().is_compatible(v));
  const TextDataset built = TextDataset::from_text(sample_text(), {.specials = {kMask}});
  CHECK(built.vocab().size() == 27);
  CHECK(built.vocab().special_id(kMask) == 26);
}
