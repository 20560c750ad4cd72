// One line of a pair TSV and the lengths block_size allows, shared by the TSV read in memory
// (pair_dataset.cpp) and the one prepared into a corpus (prepare_pairs.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qkv::data {

struct PairLine {
  std::u32string src, tgt;
};

// The source and target of a "source<TAB>target" line (a trailing '\r' dropped), or nothing
// for an empty line. Throws qkv::Error "<file>:<line_no>: ..." for a line without exactly one
// tab, invalid UTF-8 or an empty source.
std::optional<PairLine> parse_pair_line(std::string_view line, std::string_view file,
                                        int64_t line_no);

// Throws qkv::Error "<file>:<line_no>: ..." for a source longer than block_size or a target
// longer than block_size - 1 (one position goes to <bos>/<eos>).
void check_pair_length(std::string_view file, int64_t line_no, int64_t src_chars,
                       int64_t tgt_chars, int64_t block_size);

}  // namespace qkv::data
