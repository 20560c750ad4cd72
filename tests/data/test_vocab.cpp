#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "qkv/data/utf8.h"
#include "qkv/data/vocab.h"
#include "qkv/error.h"

using namespace qkv::data;
using Ids = std::vector<int32_t>;

TEST_CASE("utf8: multi-byte characters decode to code points and encode back") {
  const std::string text = "aé日本😀";  // 1, 2, 3, 3 and 4 bytes
  const std::u32string cps = decode_utf8(text);
  CHECK(cps == std::u32string{U'a', U'\u00E9', U'\u65E5', U'\u672C', U'\U0001F600'});
  std::string back;
  for (const char32_t cp : cps) append_utf8(back, cp);
  CHECK(back == text);
}

TEST_CASE("utf8: invalid sequences are rejected with their byte offset") {
  // Offsets point at the first byte of the bad sequence; "ab" puts it at byte 2.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ab\x80", "text: invalid UTF-8 at byte 2 (0x80, a continuation byte with no lead byte)"},
      {"ab\xC0\xAF", "text: invalid UTF-8 at byte 2 (0xC0, never used in UTF-8)"},
      {"ab\xE6\x97", "text: invalid UTF-8 at byte 2 (0xE6 0x97, cut off by the end of the text)"},
      {"ab\xE6"
       "A",
       "text: invalid UTF-8 at byte 2 (0xE6 0x41)"},
      {"ab\xE0\x80\x80", "text: invalid UTF-8 at byte 2 (0xE0 0x80)"},      // overlong
      {"ab\xED\xA0\x80", "text: invalid UTF-8 at byte 2 (0xED 0xA0)"},      // surrogate
      {"ab\xF4\x90\x80\x80", "text: invalid UTF-8 at byte 2 (0xF4 0x90)"},  // > U+10FFFF
  };
  for (const auto& [bytes, message] : cases) {
    CAPTURE(message);
    CHECK_THROWS_WITH_AS(decode_utf8(bytes), (message + "; the text must be UTF-8").c_str(),
                         qkv::Error);
  }
}

TEST_CASE("vocab: built from a corpus as its sorted characters, specials after them") {
  const Vocab v = Vocab::from_text("hello é日", {kPad, kBos, kEos});
  CHECK(v.num_chars() == 7);  // ' ', e, h, l, o, é, 日
  CHECK(v.size() == 10);
  CHECK(v.chars() == std::vector<char32_t>{U' ', U'e', U'h', U'l', U'o', U'\u00E9', U'\u65E5'});
  CHECK(v.special_id(kPad) == 7);
  CHECK(v.special_id(kBos) == 8);
  CHECK(v.special_id(kEos) == 9);
  CHECK(v.is_special(8));
  CHECK_FALSE(v.is_special(6));
  CHECK_THROWS_WITH_AS(v.special_id(kMask),
                       "vocab: no special token '<mask>' (the vocabulary has <pad>, <bos>, <eos>)",
                       qkv::Error);
}

TEST_CASE("vocab: encode and decode round-trip multi-byte characters") {
  const Vocab v = Vocab::from_text("é日本 abc\n");
  const std::string text = "日本 é\nab";
  const Ids ids = v.encode(text);
  CHECK(ids.size() == 7);  // characters, not bytes
  CHECK(ids[0] == 6);      // '\n',' ','a','b','c','é','日','本': 日 is id 6
  CHECK(v.decode(ids) == text);
}

TEST_CASE("vocab: an unknown character names it, its position in characters and the size") {
  const Vocab v = Vocab::from_text("ROMEO: abc");
  CHECK_THROWS_WITH_AS(v.encode("ROMEO: é", "prompt"),
                       "prompt: character 'é' (U+00E9) at position 7 is not in the vocabulary "
                       "(9 symbols)",
                       qkv::Error);
  // Position counts characters: the two 3-byte characters before 'z' count once each.
  const Vocab cjk = Vocab::from_text("日本a");
  CHECK_THROWS_WITH_AS(cjk.encode("日本z"),
                       "text: character 'z' (U+007A) at position 2 is not in the vocabulary "
                       "(3 symbols)",
                       qkv::Error);
  CHECK_THROWS_WITH_AS(cjk.encode("a\tb"),
                       doctest::Contains("character '\\t' (U+0009) at position 1"), qkv::Error);
}

TEST_CASE("vocab: invalid UTF-8 in the corpus or in text to encode names the byte offset") {
  CHECK_THROWS_WITH_AS(Vocab::from_text("abc\xFF", {}, "data.path 'x.txt'"),
                       doctest::Contains("data.path 'x.txt': invalid UTF-8 at byte 3"), qkv::Error);
  const Vocab v = Vocab::from_text("abc");
  CHECK_THROWS_WITH_AS(v.encode("a\xC3"), doctest::Contains("text: invalid UTF-8 at byte 1"),
                       qkv::Error);
}

TEST_CASE("vocab: specials decode as their names; out-of-range ids are rejected") {
  const Vocab v = Vocab::from_text("ab", {kBos, kEos});
  CHECK(v.decode(Ids{2, 0, 1, 3}) == "<bos>ab<eos>");
  CHECK_THROWS_WITH_AS(v.decode(Ids{0, 4}), "vocab: id 4 is outside the vocabulary [0, 4)",
                       qkv::Error);
  CHECK_THROWS_WITH_AS(v.decode(Ids{-1}), "vocab: id -1 is outside the vocabulary [0, 4)",
                       qkv::Error);
}

TEST_CASE("vocab: duplicate or empty special tokens are rejected") {
  CHECK_THROWS_WITH_AS(Vocab::from_text("ab", {kPad, kPad}),
                       "vocab: special token '<pad>' is listed twice", qkv::Error);
  CHECK_THROWS_WITH_AS(Vocab::from_text("ab", {""}), "vocab: special token 0 is an empty string",
                       qkv::Error);
}

TEST_CASE("vocab: json round-trips, including multi-byte and control characters") {
  const Vocab v = Vocab::from_text("a\n\té日本\"\\", {kPad, kMask});
  const nlohmann::json j = v.to_json();
  CHECK(j["chars"][0] == "\t");
  CHECK(j["specials"] == nlohmann::json{"<pad>", "<mask>"});
  const Vocab back = Vocab::from_json(nlohmann::json::parse(j.dump()));
  CHECK(back.is_compatible(v));
  CHECK(back.chars() == v.chars());
  CHECK(back.specials() == v.specials());
  CHECK(back.encode("日本\ta") == v.encode("日本\ta"));
}

TEST_CASE("vocab: from_json rejects malformed vocab.json with the place of the problem") {
  using nlohmann::json;
  const std::vector<std::pair<json, std::string>> cases = {
      {json::array(), "vocab.json: expected an object with \"chars\" and \"specials\""},
      {json{{"chars", {"a"}}}, "vocab.json: \"specials\" must be an array of strings"},
      {json{{"chars", {"a"}}, {"specials", json::array()}, {"extra", 1}},
       "vocab.json: unknown key 'extra'"},
      {json{{"chars", {"a", 5}}, {"specials", json::array()}},
       "vocab.json: chars[1] is not a string"},
      {json{{"chars", {"a", "bc"}}, {"specials", json::array()}},
       "vocab.json: chars[1] holds 2 characters, expected exactly one"},
      {json{{"chars", {"b", "a"}}, {"specials", json::array()}},
       "vocab.json: chars[1] = 'a' (U+0061) is not after chars[0] = 'b' (U+0062); chars must be "
       "strictly ascending"},
      {json{{"chars", {"a"}}, {"specials", {"<pad>", "<pad>"}}},
       "vocab.json: specials[1] = '<pad>' is listed twice"},
      {json{{"chars", {"a"}}, {"specials", {""}}},
       "vocab.json: specials[0] is not a non-empty string"},
  };
  for (const auto& [j, message] : cases) {
    CAPTURE(message);
    CHECK_THROWS_WITH_AS(Vocab::from_json(j), message.c_str(), qkv::Error);
  }
  // Invalid UTF-8 inside a char string (possible when the json was built, not parsed).
  CHECK_THROWS_WITH_AS(
      Vocab::from_json(json{{"chars", {std::string("\xFF")}}, {"specials", json::array()}},
                       "runs/x/vocab.json"),
      doctest::Contains("runs/x/vocab.json: chars[0]: invalid UTF-8 at byte 0"), qkv::Error);
}

TEST_CASE("vocab: compatibility means the same symbol behind every id") {
  const Vocab a = Vocab::from_text("abc", {kMask});
  CHECK(a.is_compatible(Vocab::from_text("cba", {kMask})));
  CHECK(a.difference(Vocab::from_text("cab", {kMask})).empty());

  const Vocab other_char = Vocab::from_text("abd", {kMask});
  CHECK_FALSE(a.is_compatible(other_char));
  CHECK(a.difference(other_char) ==
        "id 2 is 'c' (U+0063) here and 'd' (U+0064) there (4 and 4 symbols)");

  const Vocab other_special = Vocab::from_text("abc", {kPad});
  CHECK_FALSE(a.is_compatible(other_special));
  CHECK(a.difference(other_special) == "id 3 is '<mask>' here and '<pad>' there (4 and 4 symbols)");

  const Vocab fewer = Vocab::from_text("abc");
  CHECK_FALSE(a.is_compatible(fewer));
  CHECK(a.difference(fewer) == "the vocabularies have 4 and 3 symbols");
}

TEST_CASE("vocab: a vocab read from vocab.json names that file when a character is unknown") {
  const Vocab v =
      Vocab::from_json(Vocab::from_text("abc").to_json(), "runs/x/checkpoint-5/vocab.json");
  CHECK_THROWS_WITH_AS(v.encode("abz", "data.path 'new.txt'"),
                       "data.path 'new.txt': character 'z' (U+007A) at position 2 is not in the "
                       "vocabulary of runs/x/checkpoint-5/vocab.json (3 symbols)",
                       qkv::Error);
}
