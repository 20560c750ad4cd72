// Corpus: a prepared corpus, read in place. `qkv data prepare` (prepare.h) writes one;
// docs/data-format.md describes its files. Opening one reads only its small header and
// checksum list, so start-up does not grow with the corpus; ids are read as they are needed,
// from the page cache that every process on a machine shares.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qkv::data {

// A file the corpus was prepared from, as it was then.
struct CorpusSource {
  std::string path;  // absolute
  int64_t size = 0;
  int64_t mtime_ns = 0;
  std::string sha256;  // of the file's bytes as stored (compressed, for .zst)
  int64_t chars = 0;   // characters it contributed
};

// Example i of a pair corpus: ids [src_begin, tgt_begin) are its source, [tgt_begin, end) its
// target; `line` is its line in the TSV, for error messages.
struct PairSpan {
  int64_t src_begin = 0, tgt_begin = 0, end = 0, line = 0;
};

inline constexpr int kCorpusVersion = 1;
inline constexpr int64_t kCorpusBlockBytes = 64 * 1024;

class Corpus {
 public:
  enum class Kind { text, pairs };

  // Maps DIR/ids.bin after checking DIR/corpus.json (its checksum, format and version) and the
  // sizes of the files it lists. Throws qkv::Error "<dir>: ..." naming the damaged file.
  static Corpus open(const std::string& dir);
  // A corpus held in memory (TextDataset::from_text, PairDataset::from_tsv); chars ascending,
  // ids below chars.size(); `what` names it in errors, as its one source. pair_spans, for
  // pairs: per example its source's first id, its target's first id and its line, then one
  // past the last id.
  static Corpus in_memory(std::vector<char32_t> chars, const std::vector<int32_t>& ids,
                          std::string fingerprint, std::string what,
                          std::vector<int64_t> pair_spans = {});

  Kind kind() const;
  const std::string& dir() const;  // empty for one in memory
  // The characters by id: in the order they first occur in the corpus (a prepared one), or
  // ascending (one in memory). A model's vocabulary is them sorted; datasets map ids as they read.
  const std::vector<char32_t>& chars() const;
  int64_t size() const;  // ids
  int id_width() const;  // bytes per id: 1, 2 or 4
  // SHA-256 of the corpus text (all sources' characters in order, as UTF-8): for text files, of
  // their bytes concatenated, as a checkpoint's data_fingerprint has always been.
  const std::string& fingerprint() const;
  const std::vector<CorpusSource>& sources() const;

  // ids [begin, begin + n) into out. The 64 KiB blocks of ids.bin they lie in are checked
  // against their XXH3 checksums the first time this process reads them: a damaged file throws
  // qkv::Error naming it rather than training on wrong ids.
  void read(int64_t begin, int64_t n, int32_t* out) const;
  // The position of the first id for which which[id] is true, or -1 (for error messages: it
  // reads the corpus up to there).
  int64_t find_first(const std::vector<bool>& which) const;

  // Pair corpora: the examples, in file order.
  int64_t pairs() const;
  PairSpan pair(int64_t i) const;
  // The longest source and target, in characters.
  int64_t max_source_chars() const;
  int64_t max_target_chars() const;

  // Throws qkv::Error naming the first source that still exists and changed since the corpus
  // was prepared (its size or time first, then its SHA-256). A source that is gone is not an
  // error: a prepared corpus is self-contained.
  void check_sources() const;

  struct State;

 private:
  std::shared_ptr<State> s_;
};

// True when DIR holds a prepared corpus (its corpus.json exists).
bool is_prepared_corpus(const std::string& dir);

}  // namespace qkv::data
