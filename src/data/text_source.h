// Reading the text of one input file while preparing a corpus: plain UTF-8, zstd-compressed
// (.zst), or JSON lines (.jsonl, .jsonl.zst) whose records' text field is taken, each followed
// by a newline. The file's own bytes are hashed as they are read, for the corpus header.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "qkv/data/corpus.h"

namespace qkv::data {

class TextSource {
 public:
  // Opens a regular file; errors name it. jsonl_field applies to .jsonl and .jsonl.zst files.
  static std::unique_ptr<TextSource> open(const std::string& path, const std::string& jsonl_field);
  virtual ~TextSource() = default;

  // Up to n bytes of text into buf; 0 once the text has ended.
  virtual size_t read(char* buf, size_t n) = 0;
  // The file's path, size and time, and (once read() has returned 0) its bytes' SHA-256.
  virtual CorpusSource info() = 0;
  // The file's bytes read so far, for progress.
  virtual int64_t bytes_read() const = 0;
  // Where the text is the file's bytes (plain files): the hash those bytes go to, which the
  // caller feeds with the text, in order, each byte once (off the reading thread, beside its
  // other work). Null where the source hashes its bytes itself as it reads them.
  virtual class Sha256* bytes_hash() { return nullptr; }
};

}  // namespace qkv::data
