// What the writers of prepared corpora share (prepare.cpp's text, prepare_pairs.cpp's pairs):
// the header and the temporary directory that one rename publishes.
#pragma once

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "data/id_file.h"
#include "qkv/data/corpus.h"
#include "qkv/data/prepare.h"

namespace qkv::data {

// The progress lines of one preparation: one a second while it runs, and a closing line only
// after those, so a small corpus prepares silently.
class PrepareReport {
 public:
  PrepareReport(const PrepareOptions& options, const std::vector<std::string>& files);
  void at(int64_t bytes_done);  // of the input files, as stored
  void finished();

 private:
  double seconds() const;
  const PrepareOptions& options_;
  int64_t total_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double next_ = 1.0;
};

// The header fields every corpus has (docs/data-format.md).
nlohmann::json header_of(std::string_view kind, const std::vector<char32_t>& chars,
                         const IdFile& ids, const std::string& ids_sums,
                         const std::string& fingerprint, const std::vector<CorpusSource>& sources,
                         const PrepareOptions& options);

// A new temporary directory beside `out`, removed on destruction unless published.
struct TempDir {
  explicit TempDir(const std::string& out);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path;
};

// Writes the header into tmp, then renames tmp to `out` (replacing a prepared corpus there),
// and opens the result.
Corpus publish(TempDir& tmp, const std::string& out, const nlohmann::json& header);

}  // namespace qkv::data
