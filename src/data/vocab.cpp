// Vocab: sorted code points, then specials; encode/decode and the vocab.json form.
#include "qkv/data/vocab.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "qkv/data/utf8.h"
#include "qkv/error.h"

namespace qkv::data {

Vocab::Vocab(std::vector<char32_t> chars, std::vector<std::string> specials)
    : chars_(std::move(chars)), specials_(std::move(specials)) {
  std::sort(chars_.begin(), chars_.end());
  chars_.erase(std::unique(chars_.begin(), chars_.end()), chars_.end());
  for (size_t i = 0; i < specials_.size(); ++i) {
    QKV_CHECK(!specials_[i].empty(), "vocab: special token {} is an empty string", i);
    for (size_t j = 0; j < i; ++j)
      QKV_CHECK(specials_[j] != specials_[i], "vocab: special token '{}' is listed twice",
                specials_[i]);
  }
  ascii_ids_.fill(-1);
  for (size_t i = 0; i < chars_.size() && chars_[i] < 128; ++i) ascii_ids_[chars_[i]] = int32_t(i);
}

Vocab Vocab::from_text(std::string_view corpus, std::vector<std::string> specials,
                       std::string_view what) {
  std::u32string cps = decode_utf8(corpus, what);
  return Vocab(std::vector<char32_t>(cps.begin(), cps.end()), std::move(specials));
}

int32_t Vocab::id_of(char32_t cp) const {
  if (cp < 128) return ascii_ids_[cp];
  const auto it = std::lower_bound(chars_.begin(), chars_.end(), cp);
  return it != chars_.end() && *it == cp ? int32_t(it - chars_.begin()) : -1;
}

std::vector<int32_t> Vocab::encode(std::string_view text, std::string_view what) const {
  const std::u32string cps = decode_utf8(text, what);
  std::vector<int32_t> ids(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    ids[i] = id_of(cps[i]);
    if (ids[i] < 0) throw_unknown(cps[i], int64_t(i), what);
  }
  return ids;
}

void Vocab::throw_unknown(char32_t cp, int64_t position, std::string_view what) const {
  throw Error(fmt::format("{}: character {} at position {} is not in the vocabulary{} ({} symbols)",
                          what, describe_char(cp), position,
                          origin_.empty() ? std::string() : " of " + origin_, size()));
}

std::string Vocab::decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (const int32_t id : ids) {
    QKV_CHECK(id >= 0 && id < size(), "vocab: id {} is outside the vocabulary [0, {})", id, size());
    if (id < num_chars())
      append_utf8(out, chars_[id]);
    else
      out += specials_[id - num_chars()];
  }
  return out;
}

int32_t Vocab::special_id(std::string_view name) const {
  const auto it = std::find(specials_.begin(), specials_.end(), name);
  QKV_CHECK(
      it != specials_.end(), "vocab: no special token '{}' (the vocabulary has {})", name,
      specials_.empty() ? std::string("none") : fmt::format("{}", fmt::join(specials_, ", ")));
  return int32_t(num_chars() + (it - specials_.begin()));
}

bool Vocab::has_special(std::string_view name) const {
  return std::find(specials_.begin(), specials_.end(), name) != specials_.end();
}

nlohmann::json Vocab::to_json() const {
  nlohmann::json chars = nlohmann::json::array();
  for (const char32_t cp : chars_) {
    std::string s;
    append_utf8(s, cp);
    chars.push_back(std::move(s));
  }
  return {{"chars", std::move(chars)}, {"specials", specials_}};
}

Vocab Vocab::from_json(const nlohmann::json& json, std::string_view where) {
  QKV_CHECK(json.is_object(), "{}: expected an object with \"chars\" and \"specials\"", where);
  for (const auto& [key, value] : json.items())
    QKV_CHECK(key == "chars" || key == "specials", "{}: unknown key '{}'", where, key);
  for (const char* key : {"chars", "specials"}) {
    QKV_CHECK(json.contains(key) && json[key].is_array(), "{}: \"{}\" must be an array of strings",
              where, key);
  }
  std::vector<char32_t> chars;
  for (size_t i = 0; i < json["chars"].size(); ++i) {
    const auto& item = json["chars"][i];
    QKV_CHECK(item.is_string(), "{}: chars[{}] is not a string", where, i);
    const std::u32string cps =
        decode_utf8(item.get_ref<const std::string&>(), fmt::format("{}: chars[{}]", where, i));
    QKV_CHECK(cps.size() == 1, "{}: chars[{}] holds {} characters, expected exactly one", where, i,
              cps.size());
    // Ascending order is what makes ids reproducible from the corpus; a reordered file would
    // silently remap every id, so it is rejected rather than sorted.
    QKV_CHECK(chars.empty() || cps[0] > chars.back(),
              "{}: chars[{}] = {} is not after chars[{}] = {}; chars must be strictly ascending",
              where, i, describe_char(cps[0]), i - 1, describe_char(chars.back()));
    chars.push_back(cps[0]);
  }
  std::vector<std::string> specials;
  for (size_t i = 0; i < json["specials"].size(); ++i) {
    const auto& item = json["specials"][i];
    QKV_CHECK(item.is_string() && !item.get_ref<const std::string&>().empty(),
              "{}: specials[{}] is not a non-empty string", where, i);
    const auto& name = item.get_ref<const std::string&>();
    QKV_CHECK(std::find(specials.begin(), specials.end(), name) == specials.end(),
              "{}: specials[{}] = '{}' is listed twice", where, i, name);
    specials.push_back(name);
  }
  Vocab v(std::move(chars), std::move(specials));
  v.origin_ = where;
  return v;
}

bool Vocab::is_compatible(const Vocab& other) const {
  return chars_ == other.chars_ && specials_ == other.specials_;
}

std::string Vocab::symbol(int64_t id) const {
  return id < num_chars() ? describe_char(chars_[id])
                          : fmt::format("'{}'", specials_[id - num_chars()]);
}

std::string Vocab::difference(const Vocab& other) const {
  const int64_t common = std::min(size(), other.size());
  for (int64_t id = 0; id < common; ++id) {
    const bool same = id < num_chars()
                          ? id < other.num_chars() && chars_[id] == other.chars_[id]
                          : id >= other.num_chars() && specials_[id - num_chars()] ==
                                                           other.specials_[id - other.num_chars()];
    if (!same)
      return fmt::format("id {} is {} here and {} there ({} and {} symbols)", id, symbol(id),
                         other.symbol(id), size(), other.size());
  }
  if (size() == other.size()) return "";
  return fmt::format("the vocabularies have {} and {} symbols", size(), other.size());
}

}  // namespace qkv::data
