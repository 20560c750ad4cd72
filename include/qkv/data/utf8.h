// UTF-8 decoding and encoding for the character-level data: a character is one code point.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qkv::data {

// The code points of text. Strict (RFC 3629): overlong forms, surrogates, code points above
// U+10FFFF and truncated sequences are rejected with a qkv::Error
// "<what>: invalid UTF-8 at byte <offset> (<bytes>); ...", offset counted from 0.
std::u32string decode_utf8(std::string_view text, std::string_view what = "text");

// One character: its code point and its length in bytes (1 to 4).
struct Utf8Char {
  char32_t cp = 0;
  int len = 0;
};
// The character that starts at text[i]; len = 0 when the bytes there are not UTF-8.
Utf8Char decode_utf8_char(std::string_view text, size_t i);
// Throws decode_utf8's error for the bad sequence at text[i], naming byte i + offset (the
// position of text in a longer stream).
[[noreturn]] void throw_invalid_utf8(std::string_view text, size_t i, std::string_view what,
                                     int64_t offset = 0);

// Appends the UTF-8 encoding of a valid code point.
void append_utf8(std::string& out, char32_t cp);

// A character for error messages: 'é' (U+00E9); control characters are escaped ('\n', '\x01')
// so the message stays on one line.
std::string describe_char(char32_t cp);

}  // namespace qkv::data
