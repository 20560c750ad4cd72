// UTF-8 per RFC 3629 / Unicode Table 3-7 (well-formed byte sequences).
#include "qkv/data/utf8.h"

#include <cstdint>

#include "qkv/error.h"

namespace qkv::data {

namespace {

// The bytes of a bad sequence as "0xE6 0x41" for the error message.
std::string hex_bytes(std::string_view text, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i)
    out += fmt::format("{}0x{:02X}", i > begin ? " " : "", uint8_t(text[i]));
  return out;
}

[[noreturn]] void invalid(std::string_view what, std::string_view text, size_t begin, size_t end,
                          std::string_view reason, int64_t offset) {
  throw Error(fmt::format("{}: invalid UTF-8 at byte {} ({}{}); the text must be UTF-8", what,
                          int64_t(begin) + offset, hex_bytes(text, begin, end), reason));
}

// The character at text[i], or why it is not one: the bytes [i, bad_end) and a reason.
struct Decoded {
  Utf8Char c;
  size_t bad_end = 0;
  const char* reason = "";
};

Decoded decode_at(std::string_view text, size_t i) {
  const size_t n = text.size();
  const auto lead = uint8_t(text[i]);
  if (lead < 0x80) return {{lead, 1}};
  // Length and the allowed range of the second byte, which is what excludes overlong forms
  // (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
  int len = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  char32_t cp = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2, cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3, cp = lead & 0x0F;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4, cp = lead & 0x07;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return {{0, 0}, i + 1,
            lead < 0xC0 ? ", a continuation byte with no lead byte" : ", never used in UTF-8"};
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= n) return {{0, 0}, n, ", cut off by the end of the text"};
    const auto byte = uint8_t(text[i + k]);
    const bool ok = k == 1 ? (byte >= lo && byte <= hi) : (byte >= 0x80 && byte <= 0xBF);
    if (!ok) return {{0, 0}, i + k + 1, ""};
    cp = (cp << 6) | (byte & 0x3F);
  }
  return {{cp, len}};
}

}  // namespace

Utf8Char decode_utf8_char(std::string_view text, size_t i) { return decode_at(text, i).c; }

void throw_invalid_utf8(std::string_view text, size_t i, std::string_view what, int64_t offset) {
  const Decoded d = decode_at(text, i);
  invalid(what, text, i, d.bad_end, d.reason, offset);
}

std::u32string decode_utf8(std::string_view text, std::string_view what) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const Utf8Char c = decode_utf8_char(text, i);
    if (c.len == 0) throw_invalid_utf8(text, i, what);
    out.push_back(c.cp);
    i += size_t(c.len);
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string describe_char(char32_t cp) {
  std::string quoted;
  if (cp == '\n') {
    quoted = "\\n";
  } else if (cp == '\t') {
    quoted = "\\t";
  } else if (cp == '\r') {
    quoted = "\\r";
  } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
    quoted = fmt::format("\\x{:02X}", uint32_t(cp));
  } else {
    append_utf8(quoted, cp);
  }
  return fmt::format("'{}' (U+{:04X})", quoted, uint32_t(cp));
}

}  // namespace qkv::data
