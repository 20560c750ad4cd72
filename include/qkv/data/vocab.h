// Vocab: the character vocabulary. Ids 0..num_chars()-1 are the corpus's code points in
// ascending order (nanoGPT's sorted(set(text))); special tokens follow, in the order given.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qkv::data {

// Special tokens: pair (seq2seq) data uses pad/bos/eos, the masked-character objective mask.
inline constexpr const char* kPad = "<pad>";
inline constexpr const char* kBos = "<bos>";
inline constexpr const char* kEos = "<eos>";
inline constexpr const char* kMask = "<mask>";

class Vocab {
 public:
  Vocab() : Vocab(std::vector<char32_t>{}) {}  // no symbols
  // chars are sorted and deduplicated; specials must be non-empty and distinct (qkv::Error).
  Vocab(std::vector<char32_t> chars, std::vector<std::string> specials = {});
  // The sorted set of corpus's code points, plus specials. Invalid UTF-8 throws (see utf8.h).
  static Vocab from_text(std::string_view corpus, std::vector<std::string> specials = {},
                         std::string_view what = "corpus");

  // One id per character. Throws qkv::Error "<what>: character 'é' (U+00E9) at position 7 is
  // not in the vocabulary (65 symbols)", the position counted in characters from 0; a vocab
  // read by from_json says whose: "... not in the vocabulary of runs/x/checkpoint-5/vocab.json".
  std::vector<int32_t> encode(std::string_view text, std::string_view what = "text") const;
  // UTF-8 text of ids; a special token renders as its name ("<eos>"), so nothing is hidden.
  // Throws qkv::Error for an id outside [0, size()).
  std::string decode(std::span<const int32_t> ids) const;

  int64_t size() const { return num_chars() + int64_t(specials_.size()); }
  int64_t num_chars() const { return int64_t(chars_.size()); }
  const std::vector<char32_t>& chars() const { return chars_; }
  const std::vector<std::string>& specials() const { return specials_; }
  bool is_special(int32_t id) const { return id >= num_chars() && id < size(); }
  // Id of a special token; throws qkv::Error naming the token when the vocab lacks it.
  int32_t special_id(std::string_view name) const;
  bool has_special(std::string_view name) const;
  // The id of a character, or -1 when the vocabulary lacks it.
  int32_t id_of(char32_t cp) const;
  // Throws encode's error for cp, found at `position` (in characters) of `what`.
  [[noreturn]] void throw_unknown(char32_t cp, int64_t position, std::string_view what) const;

  // {"chars": ["\n", " ", "!", ...], "specials": ["<pad>", ...]}: what vocab.json holds.
  nlohmann::json to_json() const;
  // Validates everything to_json() guarantees (object with exactly these keys, one code point
  // per char string, chars strictly ascending, specials distinct and non-empty); errors start
  // with "<where>: ". `where` is remembered as the vocab's origin for encode's errors.
  static Vocab from_json(const nlohmann::json& json, std::string_view where = "vocab.json");

  // True when both map every id to the same symbol: same chars and same specials, in order.
  bool is_compatible(const Vocab& other) const;
  // Empty when compatible, else the first difference, e.g. "id 3 is 'a' (U+0061) here and
  // 'b' (U+0062) there (65 and 66 symbols)", for an error message.
  std::string difference(const Vocab& other) const;

 private:
  std::string symbol(int64_t id) const;

  std::vector<char32_t> chars_;
  std::vector<std::string> specials_;
  std::string origin_;                    // the vocab.json it was read from, or empty
  std::array<int32_t, 128> ascii_ids_{};  // the common case without a search; -1 = absent
};

}  // namespace qkv::data
