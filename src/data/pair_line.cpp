// parse_pair_line and check_pair_length: the checks, and messages, of a pair TSV's lines.
#include "data/pair_line.h"

#include <algorithm>

#include "qkv/data/utf8.h"
#include "qkv/error.h"

namespace qkv::data {

std::optional<PairLine> parse_pair_line(std::string_view line, std::string_view file,
                                        int64_t line_no) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) return std::nullopt;
  const std::string where = fmt::format("{}:{}", file, line_no);
  const auto tabs = std::count(line.begin(), line.end(), '\t');
  QKV_CHECK(tabs == 1, "{}: expected 'source<TAB>target', found {}", where,
            tabs == 0 ? std::string("no tab") : fmt::format("{} tabs", tabs));
  const size_t tab = line.find('\t');
  PairLine p{decode_utf8(line.substr(0, tab), where), decode_utf8(line.substr(tab + 1), where)};
  QKV_CHECK(!p.src.empty(), "{}: the source is empty", where);
  return p;
}

void check_pair_length(std::string_view file, int64_t line_no, int64_t src_chars,
                       int64_t tgt_chars, int64_t block_size) {
  QKV_CHECK(src_chars <= block_size,
            "{}:{}: the source has {} characters, more than block_size = {}", file, line_no,
            src_chars, block_size);
  QKV_CHECK(tgt_chars + 1 <= block_size,
            "{}:{}: the target has {} characters, more than block_size-1 = {} (one position goes "
            "to <bos>/<eos>)",
            file, line_no, tgt_chars, block_size - 1);
}

}  // namespace qkv::data
