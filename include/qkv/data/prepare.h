// Preparing a corpus: the text of the inputs decoded once, its vocabulary and ids written in
// the narrowest width, with a header of sources, hashes and a format version
// (docs/data-format.md). Training then reads it in place (corpus.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/data/corpus.h"

namespace qkv::data {

struct PrepareProgress {
  int64_t bytes_done = 0, bytes_total = 0;  // of the input files, as stored
  double seconds = 0;
  bool finished = false;
};

struct PrepareOptions {
  std::string jsonl_field = "text";  // the text field of .jsonl and .jsonl.zst records
  std::string what = "data.path";    // how errors name an input: "data.path 'x.txt': ..."
  // Called about once a second while preparing, and once at the end (finished = true).
  std::function<void(const PrepareProgress&)> progress = {};
};

// The regular files that inputs name, in order: a file as given; a directory's files (hidden
// ones skipped), recursively, in sorted order; a glob pattern's matches, sorted. Paths are made
// absolute. Throws qkv::Error "<what> '<input>': ..." for an input that does not exist, matches
// nothing, or is not a regular file or directory.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs,
                                       std::string_view what = "data.path");

// Prepares the text of `files` (plain UTF-8, .zst, .jsonl, .jsonl.zst; their characters in
// order, nothing inserted between files) into the directory `out`. It is written beside `out`
// and renamed into place, so `out` holds a whole corpus or none; a corpus already there is
// replaced. Invalid UTF-8 is an error naming the file and byte.
Corpus prepare_text(const std::vector<std::string>& files, const std::string& out,
                    const PrepareOptions& options = {});

// The same for encoder-decoder pairs: a TSV of "source<TAB>target" lines (or .tsv.zst); empty
// lines are skipped and a trailing '\r' dropped. Errors name file:line.
Corpus prepare_pairs(const std::string& tsv, const std::string& out,
                     const PrepareOptions& options = {});

}  // namespace qkv::data

namespace qkv::data {

struct CorpusOptions {
  std::string cache_dir;  // where raw text is prepared; empty: default_cache_dir()
  PrepareOptions prepare = {};
  bool pairs = false;  // a TSV of pairs rather than text
};

// What data.path names, as a prepared corpus: one directory that holds a prepared corpus is
// opened, and its sources checked (Corpus::check_sources); anything else is expanded
// (expand_inputs) and prepared into the cache once, under a key of the files' paths, sizes and
// times. Processes preparing the same key at once take turns: the first prepares, the others
// then open its result.
Corpus open_corpus(const std::vector<std::string>& paths, const CorpusOptions& options);

// $XDG_CACHE_HOME/qkv/corpora, else $HOME/.cache/qkv/corpora. Throws qkv::Error when neither
// variable is set, asking for data.cache_dir.
std::string default_cache_dir();

}  // namespace qkv::data
