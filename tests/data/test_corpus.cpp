// Prepared corpora: the same ids, split and batches as text read into memory, from every kind of
// input; widths; the cache; staleness and damage refused.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <omp.h>
#include <zstd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/corpus.h"
#include "support/error_of.h"
#include "support/temp_dir.h"
#include "qkv/data/pair_dataset.h"
#include "qkv/data/prepare.h"
#include "qkv/data/sha256.h"
#include "qkv/data/text_dataset.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"

using namespace qkv;
using namespace qkv::data;
namespace fs = std::filesystem;
using qkv::testing::error_of;

namespace {

std::string zstd(std::string_view text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3));
  return out;
}

// Every id, batch and the fingerprint of a prepared corpus equal those of the text in memory.
void check_same(const TextDataset& prepared, const std::string& text) {
  const TextDataset memory = TextDataset::from_text(text, {.val_fraction = 0.1});
  REQUIRE(prepared.vocab().is_compatible(memory.vocab()));
  // Windows as long as the shorter split allows, up to 16.
  const int64_t T = std::min<int64_t>(16, memory.size(Split::val) - 1);
  REQUIRE(T >= 1);
  for (const Split split : {Split::train, Split::val}) {
    CHECK(prepared.size(split) == memory.size(split));
    CHECK(prepared.ids(split) == memory.ids(split));
    Rng a(7), b(7);
    const Batch x = prepared.get_batch(split, 8, T, a), y = memory.get_batch(split, 8, T, b);
    CHECK(x.inputs == y.inputs);
    CHECK(x.targets == y.targets);
  }
  CHECK(prepared.fingerprint() == sha256_hex(text));
}

TextDatasetOptions cached(const testing::TempDir& dir) {
  return {.val_fraction = 0.1, .corpus = {.cache_dir = (dir.path() / "cache").string()}};
}

// Every code point from U+00A0 up, n of them: a vocabulary wider than one byte.
std::string wide_text(int n) {
  std::string s;
  for (int i = 0; i < n * 3; ++i) append_utf8(s, char32_t(0xA0 + (i * 7) % n));
  return s;
}

}  // namespace

TEST_CASE("corpus: a prepared text file gives the ids, split, batches and fingerprint of the text") {
  testing::TempDir dir("corpus_plain");
  const std::string text = testing::generated_corpus(400) + "é日本\n";
  const std::string file = dir.write("a.txt", text);
  const Corpus c = prepare_text({file}, (dir.path() / "prep").string());
  CHECK(c.id_width() == 1);
  CHECK(c.size() == int64_t(decode_utf8(text).size()));
  check_same(TextDataset::from_corpus(c, {.val_fraction = 0.1}), text);
  // data.path naming the prepared directory opens it as it is.
  check_same(TextDataset::load({(dir.path() / "prep").string()}, cached(dir)), text);
  CHECK_FALSE(fs::exists(dir.path() / "cache"));
}

TEST_CASE("corpus: several files, a directory, a glob, .zst and JSON lines, in order") {
  testing::TempDir dir("corpus_inputs");
  const std::string a = "first file é\n", b = testing::generated_corpus(50), c = "third\n";
  fs::create_directories(dir.path() / "d" / "sub");
  fs::create_directories(dir.path() / "d" / ".hidden");
  dir.write("d/b.txt", b);
  dir.write("d/sub/c.txt", c);
  dir.write("d/a.txt", a);
  dir.write("d/.hidden/x.txt", "never read");
  const std::string d = (dir.path() / "d").string();
  // A directory: its files recursively in sorted order (a, b, sub/c), hidden ones skipped.
  check_same(TextDataset::load({d}, cached(dir)), a + b + c);
  check_same(TextDataset::load({d + "/*.txt", d + "/sub/c.txt"}, cached(dir)), a + b + c);
  check_same(TextDataset::load({d + "/sub/c.txt", d + "/a.txt"}, cached(dir)), c + a);
  const std::string z = dir.write("b.txt.zst", zstd(b));
  check_same(TextDataset::load({d + "/a.txt", z}, cached(dir)), a + b);
  const std::string jl = dir.write("docs.jsonl", "{\"text\": \"one\\nline é\", \"id\": 1}\n\n"
                                                 "{\"id\": 2, \"text\": \"two\"}\n");
  check_same(TextDataset::load({jl}, cached(dir)), "one\nline é\ntwo\n");
  check_same(TextDataset::load({jl, d}, cached(dir)), "one\nline é\ntwo\n" + a + b + c);
  const std::string jz = dir.write("docs.jsonl.zst", zstd("{\"body\": \"zipped\"}\n"));
  TextDatasetOptions body = cached(dir);
  body.corpus.prepare.jsonl_field = "body";
  check_same(TextDataset::load({jz, d + "/a.txt"}, body), "zipped\n" + a);
  CHECK(error_of([&] { TextDataset::load({jl}, body); }) ==
        jl + ":1: no string field \"body\" (choose the field with --jsonl-field or "
             "data.jsonl_field)");
  CHECK(error_of([&] { TextDataset::load({d + "/*.md"}, cached(dir)); }) ==
        "data.path '" + d + "/*.md': the pattern matches no file");
}

TEST_CASE("corpus: ids take 2 bytes past 256 symbols, and a vocabulary growing mid-file widens") {
  testing::TempDir dir("corpus_wide");
  // 200 symbols, then 400 more: the first chunk of ids is written 1 byte wide, then widened.
  const std::string text = testing::generated_corpus(100) + wide_text(600);
  const Corpus c = prepare_text({dir.write("w.txt", text)}, (dir.path() / "w").string());
  CHECK(c.id_width() == 2);
  CHECK(c.chars().size() > 256);
  check_same(TextDataset::from_corpus(c, {.val_fraction = 0.1}), text);
  const Corpus narrow = prepare_text({dir.write("n.txt", wide_text(256))}, (dir.path() / "n").string());
  CHECK(narrow.id_width() == 1);
}

TEST_CASE("corpus: ids are numbered in the text's first-seen order, whatever the threads") {
  testing::TempDir dir("corpus_order");
  // New characters in every part of the chunks the threads share, latest first.
  std::string text;
  for (int i = 0; i < 4000; ++i) {
    text += testing::generated_corpus(2, uint64_t(i));
    append_utf8(text, char32_t(0x4E00 + (3999 - i) % 700));
  }
  const std::string file = dir.write("t.txt", text);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Corpus one = prepare_text({file}, (dir.path() / "one").string());
  omp_set_num_threads(4);
  const Corpus four = prepare_text({file}, (dir.path() / "four").string());
  omp_set_num_threads(threads);
  CHECK(testing::read_file(dir.path() / "one" / "ids.bin") ==
        testing::read_file(dir.path() / "four" / "ids.bin"));
  CHECK(one.chars() == four.chars());
  std::u32string seen;
  for (const char32_t cp : decode_utf8(text))
    if (seen.find(cp) == std::u32string::npos) seen += cp;
  CHECK(std::u32string(four.chars().begin(), four.chars().end()) == seen);
}

TEST_CASE("corpus: invalid UTF-8 names the file and the byte, counted across files") {
  testing::TempDir dir("corpus_utf8");
  const std::string good = dir.write("good.txt", "abc");
  const std::string bad = dir.write("bad.txt", std::string(70000, 'x') + "\xC3(");
  CHECK(error_of([&] { prepare_text({good, bad}, (dir.path() / "p").string()); }) ==
        "data.path '" + bad + "': invalid UTF-8 at byte 70000 (0xC3 0x28); the text must be UTF-8");
  CHECK_FALSE(fs::exists(dir.path() / "p"));
}

TEST_CASE("corpus: raw text is prepared into the cache once, and reused") {
  testing::TempDir dir("corpus_cache");
  const std::string file = dir.write("t.txt", testing::generated_corpus(300));
  const TextDataset first = TextDataset::load({file}, cached(dir));
  const fs::path entry = first.corpus().dir();
  CHECK(entry.parent_path() == dir.path() / "cache");
  const auto written = fs::last_write_time(entry / "ids.bin");
  // Several processes' worth of openers at once: one prepares, the others open its result.
  std::vector<std::thread> threads;
  std::vector<std::string> dirs(4);
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] { dirs[size_t(i)] = TextDataset::load({file}, cached(dir)).corpus().dir(); });
  for (std::thread& t : threads) t.join();
  for (const std::string& d : dirs) CHECK(d == entry.string());
  CHECK(fs::last_write_time(entry / "ids.bin") == written);
  // A changed file is another identity: prepared again, into a new entry.
  dir.write("t.txt", testing::generated_corpus(301));
  CHECK(TextDataset::load({file}, cached(dir)).corpus().dir() != entry.string());
}

TEST_CASE("corpus: a source changed since preparing is named; one only touched is accepted") {
  testing::TempDir dir("corpus_stale");
  const std::string file = dir.write("t.txt", testing::generated_corpus(200));
  const std::string prep = (dir.path() / "prep").string();
  prepare_text({file}, prep);
  ::utimensat(AT_FDCWD, file.c_str(), nullptr, 0);  // a new time, the same bytes
  CHECK_NOTHROW(TextDataset::load({prep}, cached(dir)));
  dir.write("t.txt", testing::generated_corpus(200, 6));
  CHECK(error_of([&] { TextDataset::load({prep}, cached(dir)); })
            .starts_with(file + ": changed since it was prepared into " + prep));
  fs::remove(file);  // gone: the prepared corpus stands alone
  CHECK_NOTHROW(TextDataset::load({prep}, cached(dir)));
}

TEST_CASE("corpus: a truncated or flipped prepared file is refused with one line") {
  testing::TempDir dir("corpus_damage");
  const std::string text = testing::generated_corpus(6000);  // 4 blocks of 64 KiB
  const std::string file = dir.write("t.txt", text);
  auto fresh = [&] {
    const std::string prep = (dir.path() / "prep").string();
    prepare_text({file}, prep);
    return prep;
  };
  auto flip = [](const std::string& path, size_t at) {
    std::string bytes = testing::read_file(path);
    bytes[at] ^= 0x01;
    std::ofstream(path, std::ios::binary) << bytes;
  };
  std::string prep = fresh();
  fs::resize_file(prep + "/ids.bin", text.size() - 1);
  CHECK(error_of([&] { Corpus::open(prep); }) ==
        prep + "/ids.bin: " + std::to_string(text.size() - 1) + " bytes where the corpus header "
        "says " + std::to_string(text.size()) + ": the file is damaged or truncated; prepare the "
        "corpus again");
  prep = fresh();
  flip(prep + "/ids.bin", 70000);  // in the second block
  const TextDataset ds = TextDataset::load({prep}, cached(dir));
  CHECK(ds.ids(Split::train, 0, 1000).size() == 1000);  // the first block is sound
  CHECK(error_of([&] { ds.ids(Split::train, 65530, 10); }) ==
        prep + "/ids.bin: bytes 65536..131072 do not match their checksum: the file is damaged; "
               "prepare the corpus again");
  const size_t blocks = (text.size() + 65535) / 65536;
  REQUIRE(blocks >= 3);
  prep = fresh();
  const std::string header = testing::read_file(prep + "/corpus.json");
  flip(prep + "/corpus.json", header.find("\"chars\"") + 20);  // one vocabulary character
  CHECK(error_of([&] { Corpus::open(prep); }).find("corpus.json: damaged") != std::string::npos);
  prep = fresh();
  flip(prep + "/ids.bin.xxh3", 3);
  CHECK(error_of([&] { Corpus::open(prep); }) ==
        prep + "/ids.bin.xxh3: missing or damaged (it must hold the checksums of " +
            std::to_string(blocks) + " blocks); prepare the corpus again");
}

TEST_CASE("corpus: a checkpoint's vocabulary renumbers a corpus with fewer characters") {
  testing::TempDir dir("corpus_vocab");
  const Vocab vocab = Vocab::from_text("abcdefgh xyz\n", {kMask});
  const std::string prep = (dir.path() / "p").string();
  prepare_text({dir.write("t.txt", "hex a bee\n")}, prep);
  const TextDataset ds = TextDataset::load({prep}, {.val_fraction = 0.5, .vocab = vocab});
  CHECK(ds.vocab().decode(ds.ids(Split::train)) == "hex a");
  CHECK(ds.vocab().decode(ds.ids(Split::val)) == " bee\n");
  const std::string other = dir.write("o.txt", "abc\nhij");
  CHECK(error_of([&] { TextDataset::load({other}, {.vocab = vocab, .corpus = cached(dir).corpus}); }) ==
        "data.path '" + fs::absolute(other).string() + "': character 'i' (U+0069) at position 5 is "
        "not in the vocabulary (14 symbols)");
}

TEST_CASE("corpus: pair data prepared gives the same examples and batches as the TSV in memory") {
  testing::TempDir dir("corpus_pairs");
  std::string tsv;
  for (int i = 0; i < 60; ++i) tsv += fmt::format("src {} é\ttarget {}\r\n\n", i, i * 7);
  const std::string file = dir.write("p.tsv", tsv);
  const PairDatasetOptions options{.val_fraction = 0.2, .block_size = 16,
                                   .corpus = {.cache_dir = (dir.path() / "cache").string()}};
  const PairDataset memory = PairDataset::from_tsv(tsv, options, file);
  for (const PairDataset& p : {PairDataset::load(file, options),
                               PairDataset::load(dir.write("p.tsv.zst", zstd(tsv)), options),
                               PairDataset::from_corpus(prepare_pairs(file, (dir.path() / "pp").string()), options)}) {
    CHECK(p.vocab().is_compatible(memory.vocab()));
    CHECK(p.corpus().fingerprint() == sha256_hex(tsv));
    for (const Split split : {Split::train, Split::val}) {
      CHECK(p.size(split) == memory.size(split));
      Rng a(3), b(3);
      const PairBatch x = p.get_batch(split, 5, a), y = memory.get_batch(split, 5, b);
      CHECK(x.src == y.src);
      CHECK(x.tgt_in == y.tgt_in);
      CHECK(x.tgt_out == y.tgt_out);
      CHECK(x.src_padding == y.src_padding);
    }
  }
  const std::string long_pair = dir.write("long.tsv", "a\tb\nabcdefghijklmnopq\tb\n");
  CHECK(error_of([&] { PairDataset::load(long_pair, options); }) ==
        fs::absolute(long_pair).string() + ":2: the source has 17 characters, more than block_size = 16");
  const std::string bad = dir.write("bad.tsv", "a\tb\nno tab here\n");
  CHECK(error_of([&] { PairDataset::load(bad, options); }) ==
        fs::absolute(bad).string() + ":2: expected 'source<TAB>target', found no tab");
}
